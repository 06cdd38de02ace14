# tiny_study.sh — sourced by the tests that run the demo pipeline in miniature: writes a small
# generated cohort to $t/c and defines `study DIR`, which writes DIR/study.yaml (output DIR/out).
# Needs $V (the vesalius binary) and $t (a scratch folder); TINY_LABELED_MODALITY (CT unless set)
# is the labeled volumes' modality.
"$V" demo-cohort --out "$t/c" --unlabeled 6 --labeled 8 --radiographs 1 --matrix 40 --slices 14:18 --positive-share 0.5 --seed 31 --labeled-modality "${TINY_LABELED_MODALITY:-CT}" >/dev/null 2>&1 || { echo "FAIL: cohort"; exit 1; }
study() { # study DIR: DIR/study.yaml writing DIR/out (identical files, so identical reports)
  mkdir -p "$1"
  cat >"$1/study.yaml" <<YAML
name: tiny-demo
output: out
seed: 7
threads: 2
deid:
  key_file: $t/site.key
ingest:
  sources: [$t/c/dicom]
preprocess:
  mode: standard
  ct_window: [-200, 300]
pretrain:
  modalities: [CT]
  crop: [16, 32, 32]
  patch: [8, 8, 8]
  dim: 24
  depth: 1
  heads: 2
  dec_dim: 12
  dec_depth: 1
  dec_heads: 2
  batch: 4
  steps: 40
  warmup_steps: 5
  lr: 0.001
  checkpoint_every: 10
labels:
  format: points
  file: $t/c/labels/annotations.csv
  volumes: $t/c/labels/volumes.csv
finetune:
  mode: finetune
  budgets: [2]
  seeds: 2
  steps: 100
  batch: 2
  eval_every: 20
validate:
  bootstrap: 50
YAML
}
