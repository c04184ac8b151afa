#!/usr/bin/env python3
"""Lints rendered manifests (`kubectl kustomize overlays/ENV | lint.py`):
what a dry run does not check but a cluster would get wrong quietly.

  - every workload's selector matches its pod template's labels;
  - every container: pinned image (a tag other than latest, or a digest),
    cpu+memory requests and limits, readiness and liveness probes,
    securityContext (no privilege escalation, read-only root fs, drop ALL);
    the pod: runAsNonRoot and seccompProfile RuntimeDefault;
  - Prometheus scrape annotations name a declared container port;
  - every Service selects a workload and targets its declared ports; a
    StatefulSet's serviceName is a headless Service;
  - every workload is covered by exactly one PodDisruptionBudget, and every
    PDB selects a workload; every HPA targets an existing workload;
  - volumes name existing ConfigMaps and PVCs; GPU containers run on GPU
    nodes (nodeSelector and a toleration);
  - each container's --flagfile (a key of the flags ConfigMap) agrees with
    it: --address on all interfaces at the grpc port, --metrics_port at the
    metrics port, data and model directories on mounted volumes.

Exit 0: clean; 1: problems (one line each).
"""
import re
import sys

import yaml

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def flag_file_problems(cn, c, pod, configmaps_data):
    """The flags a container reads from its --flagfile (a ConfigMap key)
    must agree with its declared ports and its readiness probe."""
    problems = []
    files = [a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--flagfile=")]
    if not files:
        return [f"{cn}: no --flagfile argument (flags come from the recsys-flags ConfigMap)"]
    path = files[0]
    directory, key = path.rsplit("/", 1)
    mount = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == directory), None)
    volume = mount and next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), None)
    if not volume or "configMap" not in volume:
        return [f"{cn}: --flagfile={path} is not on a ConfigMap mount"]
    data = configmaps_data.get(volume["configMap"]["name"], {})
    if key not in data:
        return [f"{cn}: ConfigMap {volume['configMap']['name']} has no key {key}"]
    flags = dict(re.findall(r"^--([a-z_]+)=(.*)$", data[key], re.M))
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    address = flags.get("address", "")
    if not re.fullmatch(r"0\.0\.0\.0:\d+|\[::\]:\d+", address):
        problems.append(f"{cn}: {key}: --address={address!r} does not listen on all interfaces")
    elif int(address.rsplit(":", 1)[1]) != ports.get("grpc"):
        problems.append(f"{cn}: {key}: --address port is not the grpc containerPort {ports.get('grpc')}")
    if flags.get("metrics_port") != str(ports.get("metrics")):
        problems.append(f"{cn}: {key}: --metrics_port={flags.get('metrics_port')} is not the metrics containerPort {ports.get('metrics')}")
    probe = " ".join(c.get("readinessProbe", {}).get("exec", {}).get("command", []))
    if "-addr=" in probe and f":{ports.get('grpc')} " not in probe + " ":
        problems.append(f"{cn}: readiness probe does not ask the grpc port {ports.get('grpc')}")
    for flag in ("data_dir", "models_dir"):
        if flag in flags and not any(flags[flag].startswith(m["mountPath"]) for m in c.get("volumeMounts", [])):
            problems.append(f"{cn}: {key}: --{flag}={flags[flag]} is on no volume (the root fs is read-only)")
    return problems


def lint(docs):
    problems = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    name = lambda d: f"{d['kind']}/{d['metadata']['name']}"
    workloads = [d for k in WORKLOADS for d in by_kind.get(k, [])]
    configmaps = {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}
    configmaps_data = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
    pvcs = {d["metadata"]["name"]: d for d in by_kind.get("PersistentVolumeClaim", [])}
    services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}

    def pod_labels(w):
        return w["spec"]["template"]["metadata"].get("labels", {})

    def container_ports(w):
        return {p.get("name"): p["containerPort"]
                for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}

    for w in workloads:
        n = name(w)
        spec = w["spec"]
        pod = spec["template"]["spec"]
        sel = spec.get("selector", {}).get("matchLabels", {})
        if not selects(sel, pod_labels(w)):
            problems.append(f"{n}: selector {sel} does not match template labels {pod_labels(w)}")
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problems.append(f"{n}: pod securityContext.runAsNonRoot is not true")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{n}: pod seccompProfile is not RuntimeDefault")
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            cn = f"{n} container {c['name']}"
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
                problems.append(f"{cn}: image {image!r} is not pinned (tag or digest, not latest)")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        problems.append(f"{cn}: resources.{part}.{r} missing")
            gpus = res.get("limits", {}).get("nvidia.com/gpu")
            if gpus:
                if not pod.get("nodeSelector"):
                    problems.append(f"{cn}: GPU limit but no nodeSelector")
                if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
                    problems.append(f"{cn}: GPU limit but no nvidia.com/gpu toleration")
            if c in pod.get("containers", []):
                for probe in ("readinessProbe", "livenessProbe"):
                    if not c.get(probe):
                        problems.append(f"{cn}: {probe} missing")
                    elif "grpc" in c[probe]:
                        problems.append(f"{cn}: {probe} uses the grpc: probe (Kubernetes 1.24+; see deploy/README.md)")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cn}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cn}: readOnlyRootFilesystem is not true")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append(f"{cn}: capabilities.drop lacks ALL")
            if c in pod.get("containers", []):
                problems += flag_file_problems(cn, c, pod, configmaps_data)
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            declared = {v["name"] for v in pod.get("volumes", [])}
            declared |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
            for m in sorted(mounts - declared):
                problems.append(f"{cn}: volumeMount {m} names no volume")
        ann = spec["template"]["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true":
            problems.append(f"{n}: prometheus.io/scrape annotation is not \"true\"")
        elif str(ann.get("prometheus.io/port")) not in {str(p) for p in container_ports(w).values()}:
            problems.append(f"{n}: prometheus.io/port {ann.get('prometheus.io/port')} is no container port")
        for v in pod.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                problems.append(f"{n}: volume {v['name']} names missing ConfigMap {v['configMap']['name']}")
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in pvcs:
                problems.append(f"{n}: volume {v['name']} names missing PVC {v['persistentVolumeClaim']['claimName']}")
        if w["kind"] == "StatefulSet":
            svc = services.get(spec.get("serviceName"))
            if svc is None or svc["spec"].get("clusterIP") != "None":
                problems.append(f"{n}: serviceName {spec.get('serviceName')!r} is no headless Service")
            if not spec.get("volumeClaimTemplates"):
                problems.append(f"{n}: no volumeClaimTemplates")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
                if selects(p["spec"].get("selector", {}).get("matchLabels", {}), pod_labels(w))]
        if len(pdbs) != 1:
            problems.append(f"{n}: covered by {len(pdbs)} PodDisruptionBudgets, want 1")

    for s in services.values():
        sel = s["spec"].get("selector", {})
        targets = [w for w in workloads if selects(sel, pod_labels(w))]
        if not targets:
            problems.append(f"{name(s)}: selector {sel} matches no workload")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort", p["port"])
            for w in targets:
                ports = container_ports(w)
                if tp not in ports and tp not in ports.values():
                    problems.append(f"{name(s)}: targetPort {tp} is not a port of {name(w)}")

    for p in by_kind.get("PodDisruptionBudget", []):
        sel = p["spec"].get("selector", {}).get("matchLabels", {})
        if not any(selects(sel, pod_labels(w)) for w in workloads):
            problems.append(f"{name(p)}: selector {sel} matches no workload")

    for h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = h["spec"]["scaleTargetRef"]
        if not any(w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"] for w in workloads):
            problems.append(f"{name(h)}: scaleTargetRef {ref['kind']}/{ref['name']} does not exist")
        if not 1 <= h["spec"].get("minReplicas", 1) <= h["spec"]["maxReplicas"]:
            problems.append(f"{name(h)}: minReplicas/maxReplicas out of order")
        if not h["spec"].get("metrics"):
            problems.append(f"{name(h)}: no metrics")

    for pvc in pvcs.values():
        if "ReadWriteMany" in pvc["spec"].get("accessModes", []):
            users = [w for w in workloads if any(
                v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]
                for v in w["spec"]["template"]["spec"].get("volumes", []))]
            if len(users) < 2:
                problems.append(f"{name(pvc)}: ReadWriteMany but mounted by {len(users)} workload(s)")
    return problems


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    if not docs:
        print("FAIL: no manifests")
        return 1
    for d in docs:
        if not d.get("apiVersion") or not d.get("kind") or not d.get("metadata", {}).get("name"):
            print(f"FAIL: a document lacks apiVersion/kind/metadata.name: {str(d)[:80]}")
            return 1
    problems = lint(docs)
    for p in problems:
        print("FAIL:", p)
    if not problems:
        kinds = sorted({d["kind"] for d in docs})
        print(f"lint: {len(docs)} manifests ok ({', '.join(kinds)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
