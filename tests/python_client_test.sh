#!/usr/bin/env bash
# The Python client (clients/python) against real services on loopback: a
# retrieval sidecar and a recommendation server serving a small trained
# model; runs client_test.py and each example script.
set -euo pipefail
source "${TEST_SRCDIR:-.}/recsys/tests/lib.sh"
test_init pyclient
"$R/trainer/make_demo_data" --out_dir="$T/data" --num_items=80 --num_users=150 \
  --num_categories=4 --num_styles=3 --text_states=5 --text_hidden=16 --image_states=5 \
  --image_hidden=8 >"$T/demo.log" 2>&1
"$R/trainer/train" --interactions="$T/data/users.tsv" --text_cache="$T/data/text_states.safetensors" \
  --image_cache="$T/data/image_states.safetensors" --epochs=1 --embedding_dim=16 --bottleneck=8 \
  --ffn_dim=32 --out_dir="$T/models" >"$T/train.log" 2>&1 || { tail "$T/train.log"; fail "train"; }
start retrieval "$R/retrieval/retrieval_server" --data_dir="$T/retrieval"
"$R/clients/recctl/recctl" --retrieval="$retrieval_ADDR" model publish --version_dir="$T/models/1" \
  --items="$T/data/items.tsv" >"$T/publish.log" || fail "publish"
start recommender "$R/server/recommendation_server" --models_dir="$T/models" \
  --retrieval="$retrieval_ADDR" --poll_interval=100ms
read -r -a ITEMS <<<"$(head -1 "$T/data/users.tsv" | cut -f2)"
HISTORY=$(IFS=,; echo "${ITEMS[*]:0:3}")
PY="$R/clients/python"
export PYTHONPATH="$PY:$PY/gen"
# The server turns SERVING once the sidecar has version 1 live.
deadline=$((SECONDS + 60))
until /usr/bin/python3 -c "
import sys; from recsys_client import RecsysClient
sys.exit(RecsysClient(recommender='$recommender_ADDR').health('recommender') != 'SERVING')" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "recommender never SERVING"
  sleep 0.1
done
/usr/bin/python3 "$PY/client_test.py" "$retrieval_ADDR" "$recommender_ADDR" "$HISTORY"
/usr/bin/python3 "$PY/examples/recommend.py" --recommender="$recommender_ADDR" ${ITEMS[@]:0:3} >"$T/ex1.txt"
grep -q "^model version 1" "$T/ex1.txt" || fail "examples/recommend.py: $(cat "$T/ex1.txt")"
/usr/bin/python3 "$PY/examples/search.py" --retrieval="$retrieval_ADDR" >"$T/ex2.txt"
grep -q "^p030\|^p029\|^p031" "$T/ex2.txt" && grep -q "is LIVE with 60 entries" "$T/ex2.txt" ||
  fail "examples/search.py: $(cat "$T/ex2.txt")"
# The trainer service: a train job submitted and watched from Python,
# written to the recommender's models dir (version 2) and published.
start trainer "$R/trainer/service/trainer_server" --data_dir="$T/trainer" \
  --models_dir="$T/models" --retrieval="$retrieval_ADDR"
/usr/bin/python3 "$PY/examples/train.py" --trainer="$trainer_ADDR" \
  --interactions="$T/data/users.tsv" --text_cache="$T/data/text_states.safetensors" \
  --image_cache="$T/data/image_states.safetensors" --items="$T/data/items.tsv" \
  --epochs=1 --embedding_dim=16 >"$T/ex3.txt" 2>&1 || { cat "$T/ex3.txt"; fail "examples/train.py"; }
grep -q "PUBLISHED, model version 2" "$T/ex3.txt" || fail "examples/train.py: $(cat "$T/ex3.txt")"
grep -q "^epoch 1: loss" "$T/ex3.txt" || fail "no epoch line: $(cat "$T/ex3.txt")"
/usr/bin/python3 - "$trainer_ADDR" <<'PY'
import sys
from recsys_client import RecsysClient, RecsysError
with RecsysClient(trainer=sys.argv[1]) as c:
    job = c.job(1)
    assert job.state == "PUBLISHED" and job.version == 2 and len(job.epochs) == 1, job
    assert [s.state for s in c.watch(1)][-1] == "PUBLISHED"  # a late watcher gets the end
    try:
        c.job(42)
        raise AssertionError("unknown job accepted")
    except RecsysError as e:
        assert e.code == "NOT_FOUND", e
PY
# The similarity endpoint: a tiny example collection indexed, published and
# queried from Python.
start similarity "$R/server/similarity/similarity_server" --state_dir="$T/similarity" \
  --retrieval="$retrieval_ADDR"
/usr/bin/python3 - "$similarity_ADDR" <<'PY'
import sys
from recsys_client import RecsysClient, RecsysError
pairs = [("g1", "the cat sleeps on the red mat", "el gato duerme en la alfombra roja", "en-es"),
         ("g2", "the dog runs in the green park", "el perro corre en el parque verde", "en-es"),
         ("g3", "a cat sleeps on a mat", "un gato duerme en una alfombra", "en-es"),
         ("g4", "stock markets fell sharply today", "las bolsas cayeron hoy", "en-es")]
with RecsysClient(similarity=sys.argv[1]) as c:
    c.create_example_collection("pyexamples")
    assert c.index_examples("pyexamples", pairs, batch_size=3) == 4
    assert c.publish_similarity("pyexamples") == 1
    s = c.select_examples("pyexamples", "the cat sleeps on the mat", "en-es", k=2,
                          source_language="English", target_language="Spanish")
    assert {e.key for e in s.examples} == {"g1", "g3"}, s.examples
    assert s.examples[0].score >= s.examples[1].score > 0, s.examples
    assert s.prompt.rstrip().endswith("the cat sleeps on the mat\nSpanish:"), s.prompt
    try:
        c.select_examples("pyexamples", "", "en-es")
        raise AssertionError("empty sentence accepted")
    except RecsysError as e:
        assert e.code == "INVALID_ARGUMENT", e
PY
# A BERT-encoder collection from Python (model/encoders' seeded stand-in:
# a config.json and vocab.txt, no weights), mean pooling: an indexed
# sentence finds itself at cosine 1; a missing model directory is refused.
mkdir -p "$T/bert"
{ printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n'; printf '%s\n' the a cat dog sleeps runs on in mat park red green; } >"$T/bert/vocab.txt"
echo '{"model_type": "bert", "vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 2,
  "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 32}' >"$T/bert/config.json"
/usr/bin/python3 - "$similarity_ADDR" "$T/bert" <<'PY'
import sys
from recsys_client import RecsysClient, RecsysError
pairs = [("b1", "the cat sleeps on the mat", "x", "en-es"),
         ("b2", "a dog runs in the green park", "y", "en-es"),
         ("b3", "the red cat", "z", "en-es")]
with RecsysClient(similarity=sys.argv[1]) as c:
    fp = c.create_example_collection("pybert", encoder="bert", model=sys.argv[2], pooling="mean")
    assert fp.startswith("bert") and "mean" in fp, fp
    assert c.index_examples("pybert", pairs) == 3 and c.publish_similarity("pybert") == 1
    s = c.select_examples("pybert", "a dog runs in the green park", "en-es", k=1)
    assert s.examples[0].key == "b2" and abs(s.examples[0].score - 1) < 1e-4, s.examples
    try:
        c.create_example_collection("pybert2", encoder="bert", model=sys.argv[2] + "/nope")
        raise AssertionError("a missing model directory was accepted")
    except RecsysError as e:
        assert e.code == "NOT_FOUND", e
    try:
        c.create_example_collection("pybert3", encoder="bert", pooling="max")
        raise AssertionError("pooling=max accepted")
    except ValueError as e:
        assert "pooling" in str(e), e
    print("BERT collection from Python:", fp)
PY
/usr/bin/python3 "$PY/examples/select_examples.py" --similarity="$similarity_ADDR" \
  --collection=pyexamples "a cat on a mat" >"$T/ex4.txt"
grep -q "^--- prompt ---" "$T/ex4.txt" || fail "examples/select_examples.py: $(cat "$T/ex4.txt")"
echo "python client e2e: ok"
