#!/usr/bin/env python3
"""A stand-in Kubernetes API server on loopback for offline
`kubectl apply --dry-run=client`: kubectl still asks the server which kinds
exist (discovery) and whether each object exists already. This answers
discovery for the API versions of the clusters we target (Kubernetes 1.23
and later: apps/v1, autoscaling/v2, policy/v1) and "not found" for every
object, so a dry run maps every kind (a misspelt kind or an apiVersion the
target has dropped fails) and reports it "created (dry run)".

Usage: fake_apiserver.py PORT_FILE   (writes the chosen port, serves until
killed)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# group/version -> [(plural, kind, namespaced)]
RESOURCES = {
    "v1": [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True),
           ("services", "Service", True), ("persistentvolumeclaims", "PersistentVolumeClaim", True),
           ("serviceaccounts", "ServiceAccount", True), ("secrets", "Secret", True)],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "autoscaling/v1": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def group_list():
    groups = {}
    for gv in RESOURCES:
        if "/" in gv:
            g, v = gv.split("/")
            groups.setdefault(g, []).append({"groupVersion": gv, "version": v})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": vs, "preferredVersion": vs[-1]} for g, vs in groups.items()]}


def resource_list(gv):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [{"name": p, "singularName": "", "namespaced": ns, "kind": k,
                           "verbs": VERBS} for p, k, ns in RESOURCES[gv]]}


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if path == "/apis":
            return self._send(200, group_list())
        if path == "/api/v1":
            return self._send(200, resource_list("v1"))
        if path.startswith("/apis/") and path[len("/apis/"):] in RESOURCES:
            return self._send(200, resource_list(path[len("/apis/"):]))
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "23", "gitVersion": "v1.23.0"})
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404, "message": f"{path} not found"})

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(f"{server.server_address[1]}\n")
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
