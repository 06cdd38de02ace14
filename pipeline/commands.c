/* commands.c — the command table: one row per command, its help text and its entry point.
 * A command whose entry point is NULL is planned but not built yet: `--help` describes it,
 * running it says so and exits 1. */
#include "cli.h"

#include <stddef.h>

int cmd_anonymize(int argc, char **argv);   /* cmd_anonymize.c */
int cmd_verify_deid(int argc, char **argv); /* cmd_verify_deid.c */

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
     "chosen options) to every DICOM file under SRC, at every sequence depth, and writes the\n"
     "results as DIR/SERIES/INSTANCE.dcm (pseudonyms, never patient data), keeping the transfer\n"
     "syntax and the pixel data. UIDs, patient pseudonyms and date shifts are keyed by FILE\n"
     "(created with mode 0600 on first use; refused when group or others can read it).\n"
     "Images that may carry burned-in text (BurnedInAnnotation YES, or US, XA and secondary\n"
     "capture without it) are rejected (exit 4) unless --accept-burned-in.\n"
     "\n"
     "Options (PS3.15 Table E.1-1 options, any combination):\n"
     "      --out DIR                     output folder\n"
     "      --key FILE                    site key file\n"
     "      --retain-safe-private         keep private elements on the safe list\n"
     "      --retain-uids                 keep UIDs\n"
     "      --retain-device-id            keep device identity\n"
     "      --retain-institution-id       keep institution identity\n"
     "      --retain-patient-chars        keep patient characteristics (age, sex, size...)\n"
     "      --retain-long-full-dates      keep dates and times\n"
     "      --retain-long-modified-dates  shift dates by a keyed per-patient offset\n"
     "      --clean-descriptors           keep descriptions, with identifiers scrubbed\n"
     "      --clean-structured-content    keep structured content, cleaned\n"
     "      --clean-graphics              keep graphics and overlays, text cleaned\n"
     "      --accept-burned-in            accept images that may carry burned-in text (flagged)\n"
     "      --linkage FILE                record original -> pseudonym in an SQLite table (0600)\n"
     COMMON_HELP,
     cmd_anonymize},
    {"verify-deid", "scan DICOM files, shards and reports for identifying data",
     "Usage: vesalius verify-deid PATH... [--phi-list FILE]\n"
     "\n"
     "Reports every attribute the confidentiality profile forbids, every private tag, every UID\n"
     "not of the pseudonym form and every known identifier from FILE, naming the file and the\n"
     "tag, never the value. Exits 7 on any hit. Scans DICOM files (shards and reports later).\n"
     COMMON_HELP,
     cmd_verify_deid},
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
     "bootstrap confidence intervals, k-fold results and full provenance.\n"
     COMMON_HELP,
     NULL},
    {"run", "run a whole study from its YAML file, resumably",
     "Usage: vesalius run STUDY.yaml [--stages LIST] [--from STAGE] [--dry-run]\n"
     "\n"
     "Runs ingest, pretrain, finetune (MAE and from scratch), predict and validate as the study\n"
     "file says, skipping stages whose inputs did not change.\n"
     COMMON_HELP,
     NULL},
};

const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);
