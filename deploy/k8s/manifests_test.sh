#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests, for each overlay:
#   kubectl kustomize overlays/ENV | kubectl apply --dry-run=client
#     --validate=false -f -   (against fake_apiserver.py: discovery only)
#   kubectl kustomize overlays/ENV | lint.py
# then broken copies of the base must fail, each for its reason.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
D="${TEST_SRCDIR:-.}/recsys/deploy/k8s"
[ -d "$D" ] || D="deploy/k8s"
TMP="${TEST_TMPDIR:-$(mktemp -d)}/k8s"
rm -rf "$TMP"; mkdir -p "$TMP"
# kustomize refuses the symlinks of Bazel's runfiles: work on a real copy.
cp -rL "$D" "$TMP/src"
D="$TMP/src"
PY=/usr/bin/python3
KUBECTL="${KUBECTL:-kubectl}"
command -v "$KUBECTL" >/dev/null || fail "kubectl missing (Debian package kubernetes-client)"
export HOME="${HOME:-$TMP}" KUBECONFIG="$TMP/kubeconfig"
: >"$KUBECONFIG"
"$KUBECTL" version --client 2>/dev/null | sed -n 1p || true

"$PY" "$D/fake_apiserver.py" "$TMP/api.port" &
API=$!
trap 'kill $API 2>/dev/null || true' EXIT
deadline=$((SECONDS + 20))
until [ -s "$TMP/api.port" ]; do
  [ $SECONDS -lt $deadline ] || fail "fake API server did not start"
  sleep 0.05
done
SERVER="http://127.0.0.1:$(cat "$TMP/api.port")"

check() {  # dir with base/ and overlays/, env -> 0 if both checks pass
  local out="$TMP/rendered.$2.yaml"
  "$KUBECTL" kustomize "$1/overlays/$2" >"$out" &&
    "$KUBECTL" apply --dry-run=client --validate=false --server="$SERVER" -f - <"$out" >"$TMP/apply.log" &&
    "$PY" "$D/lint.py" "$out"
}

for env in dev prod; do
  check "$D" "$env" || { cat "$TMP/apply.log" 2>/dev/null; fail "overlay $env"; }
  n=$(grep -c "created (dry run)" "$TMP/apply.log")
  [ "$n" -eq "$(grep -c '^kind:' "$TMP/rendered.$env.yaml")" ] || fail "$env: $n of the objects applied"
  grep -q "^  namespace: recsys" "$TMP/rendered.$env.yaml" || fail "$env: no namespace"
  echo "overlay $env: $n objects pass the dry run and the lint"
done

# Broken copies: each must fail, with the expected message.
broken() {  # name, expected message, file under deploy/k8s, python statement on `docs`
  rm -rf "$TMP/copy"; cp -r "$D" "$TMP/copy"; chmod -R u+w "$TMP/copy"
  "$PY" - "$TMP/copy/$3" "$4" <<'PY'
import sys, yaml
path, stmt = sys.argv[1], sys.argv[2]
docs = list(yaml.safe_load_all(open(path)))
k = {f"{d.get('kind')}/{d.get('metadata', {}).get('name')}": d for d in docs}
exec(stmt)
yaml.safe_dump_all(docs, open(path, "w"))
PY
  if check "$TMP/copy" prod >"$TMP/broken.log" 2>&1; then fail "$1: accepted"; fi
  grep -q -- "$2" "$TMP/broken.log" "$TMP/apply.log" 2>/dev/null ||
    fail "$1: wrong reason: $(cat "$TMP/broken.log")"
  echo "rejected as expected: $1"
}
C='["spec"]["template"]["spec"]["containers"][0]'
broken "Service selects nothing" "matches no workload" base/recommender.yaml \
  'k["Service/recsys-recommender"]["spec"]["selector"]["app.kubernetes.io/name"] = "recsys-recomender"'
broken "selector != template labels" "does not match template labels" base/similarity.yaml \
  'k["Deployment/similarity"]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "sim"'
broken "no resources" "resources.limits.memory missing" base/similarity.yaml \
  "del k['Deployment/similarity']$C['resources']['limits']['memory']"
broken "no readiness probe" "readinessProbe missing" base/retrieval.yaml \
  "del k['StatefulSet/retrieval']$C['readinessProbe']"
broken "writable root fs" "readOnlyRootFilesystem is not true" base/trainer.yaml \
  "k['Deployment/trainer']$C['securityContext']['readOnlyRootFilesystem'] = False"
broken "image latest" "is not pinned" overlays/prod/kustomization.yaml \
  'docs[0]["images"][1]["newTag"] = "latest"'
broken "GPU without node selector" "GPU limit but no nodeSelector" base/trainer.yaml \
  'del k["Deployment/trainer"]["spec"]["template"]["spec"]["nodeSelector"]'
broken "HPA target missing" "scaleTargetRef Deployment/recommendr does not exist" base/recommender.yaml \
  'k["HorizontalPodAutoscaler/recommender"]["spec"]["scaleTargetRef"]["name"] = "recommendr"'
broken "PDB selects nothing" "covered by 0 PodDisruptionBudgets" base/retrieval.yaml \
  'k["PodDisruptionBudget/recsys-retrieval"]["spec"]["selector"]["matchLabels"] = {"app": "x"}'
broken "StatefulSet not headless" "is no headless Service" base/retrieval.yaml \
  'del k["Service/recsys-retrieval"]["spec"]["clusterIP"]'
broken "API version the target lacks" "no matches for kind" base/recommender.yaml \
  'k["PodDisruptionBudget/recsys-recommender"]["apiVersion"] = "policy/v1beta1"'
broken "misspelt kind" "no matches for kind" base/similarity.yaml \
  'k["Deployment/similarity"]["kind"] = "Deploymnet"'
# Flag files disagreeing with the manifests.
broken_sed() {  # name, expected message, file under deploy/k8s, sed expression
  rm -rf "$TMP/copy"; cp -r "$D" "$TMP/copy"; chmod -R u+w "$TMP/copy"
  sed -i "$4" "$TMP/copy/$3"
  ! cmp -s "$D/$3" "$TMP/copy/$3" || fail "$1: the edit changed nothing"
  if check "$TMP/copy" prod >"$TMP/broken.log" 2>&1; then fail "$1: accepted"; fi
  grep -q -- "$2" "$TMP/broken.log" || fail "$1: wrong reason: $(cat "$TMP/broken.log")"
  echo "rejected as expected: $1"
}
broken_sed "metrics port != annotation" "is not the metrics containerPort" \
  overlays/prod/flags/retrieval.flags 's/^--metrics_port=9090$/--metrics_port=9091/'
broken_sed "loopback address in a pod" "does not listen on all interfaces" \
  base/flags/recommender.flags 's/^--address=0.0.0.0:50051$/--address=127.0.0.1:50051/'
broken_sed "model dir on the read-only root" "is on no volume" \
  base/flags/trainer.flags 's#^--models_dir=.*#--models_dir=/models#'
echo "k8s manifests: ok"
