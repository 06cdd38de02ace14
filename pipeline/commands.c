/* commands.c — the command table: one row per command, its help text and its entry point.
 * A command whose entry point is NULL is planned but not built yet: `--help` describes it,
 * running it says so and exits 1. */
#include "cli.h"

#include <stddef.h>

int cmd_validate(int argc, char **argv);

#define COMMON_HELP                                                                      \
    "\nCommon options:\n"                                                                \
    "  -h, --help          show this help\n"                                             \
    "      --log-json      log JSON lines on stderr\n"                                   \
    "      --log-level L   debug, info, warn, error or quiet\n"                          \
    "  -j, --threads N     worker threads\n"

const cli_command cli_commands[] = {
    {"ingest", "read DICOM, de-identify and write training shards",
     "Usage: vesalius ingest SRC... --out DIR --key FILE [--study FILE] [OPTIONS]\n"
     "\n"
     "Reads DICOM files, folders and DICOMDIRs under SRC, assembles 3D volumes, de-identifies\n"
     "them in memory (DICOM PS3.15 Annex E) and writes HDF5 shards and a catalog under DIR.\n"
     "A rerun adds only what is new. Every input ends used, skipped or rejected with a reason.\n"
     COMMON_HELP,
     NULL},
    {"anonymize", "write de-identified copies of DICOM files",
     "Usage: vesalius anonymize SRC... --out DIR --key FILE [OPTIONS]\n"
     "\n"
     "Applies the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (and the\n"
     "chosen options) to every DICOM file under SRC and writes the results under DIR, keeping\n"
     "the transfer syntax and the pixel data. Pseudonyms and date shifts are keyed by FILE.\n"
     COMMON_HELP,
     NULL},
    {"verify-deid", "scan DICOM files, shards and reports for identifying data",
     "Usage: vesalius verify-deid PATH... [--phi-list FILE]\n"
     "\n"
     "Reports every attribute the confidentiality profile forbids, every private tag, every UID\n"
     "not of the pseudonym form and every known identifier from FILE, naming the file and the\n"
     "tag, never the value. Exits 7 on any hit.\n"
     COMMON_HELP,
     NULL},
    {"inspect", "describe DICOM files, shards, checkpoints or a catalog",
     "Usage: vesalius inspect PATH...\n"
     "\n"
     "Prints what vesalius sees in PATH: series and volumes with their geometry for DICOM,\n"
     "volumes and attributes for shards, configuration and step for checkpoints.\n"
     COMMON_HELP,
     NULL},
    {"pretrain", "pretrain the 3D masked autoencoder on shards",
     "Usage: vesalius pretrain --shards DIR --out DIR [--study FILE] [OPTIONS]\n"
     "\n"
     "Trains the 3D masked autoencoder (ViT encoder, 75% masking) on random crops of the\n"
     "shards, writing checkpoints that resume bit-exactly and a safetensors export.\n"
     COMMON_HELP,
     NULL},
    {"finetune", "fine-tune the tumor detector on labeled volumes",
     "Usage: vesalius finetune --shards DIR --labels FILE --out DIR [--init CHECKPOINT] [OPTIONS]\n"
     "\n"
     "Trains the detection head (and optionally the encoder) on a small labeled set, from a\n"
     "pretraining checkpoint or from scratch, with patient-level folds.\n"
     COMMON_HELP,
     NULL},
    {"predict", "detect lesions in volumes with a trained detector",
     "Usage: vesalius predict --model CHECKPOINT --shards DIR --out FILE [OPTIONS]\n"
     "\n"
     "Sliding-window inference over whole volumes; writes candidates (LPS mm, probability,\n"
     "size) and a volume-level score as CSV and JSON.\n"
     COMMON_HELP,
     NULL},
    {"validate", "compute ROC/AUC, FROC/CPM with confidence intervals and write a report",
     "Usage: vesalius validate --predictions FILE... --labels FILE --out DIR [OPTIONS]\n"
     "\n"
     "Writes report.json, report.md and report.html: ROC and AUC, FROC and CPM (LUNA16),\n"
     "bootstrap confidence intervals, k-fold results and full provenance. Input forms are\n"
     "in validation/FORMATS.md, the report.json schema in validation/REPORT_SCHEMA.md.\n"
     "\n"
     "  --predictions FILE...  candidates and volume scores (CSV or JSON lines); repeatable\n"
     "  --labels FILE          lesions and volume labels (CSV or JSON lines)\n"
     "  --out DIR              where the three report files go (created if missing)\n"
     "  --train-log [NAME=]FILE  JSON-lines training log (\"train.step\" events); repeatable\n"
     "  --preview [NAME=]PNG   MAE reconstruction preview to embed; repeatable\n"
     "  --study FILE           study file (its SHA-256 goes into the provenance)\n"
     "  --shards DIR           shard folder (SHA-256 of its *.h5 set goes into the provenance)\n"
     "  --bootstrap N          bootstrap resamples over patients (default 1000; 0: no CIs)\n"
     "  --seed S               bootstrap seed (default 1)\n"
     "  --record-seed NAME=N   a seed used upstream, recorded in the provenance; repeatable\n"
     "  --operating-point P    threshold for sensitivity/specificity (default 0.5); repeatable\n"
     COMMON_HELP,
     cmd_validate},
    {"run", "run a whole study from its YAML file, resumably",
     "Usage: vesalius run STUDY.yaml [--stages LIST] [--from STAGE] [--dry-run]\n"
     "\n"
     "Runs ingest, pretrain, finetune (MAE and from scratch), predict and validate as the study\n"
     "file says, skipping stages whose inputs did not change.\n"
     COMMON_HELP,
     NULL},
};

const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);
