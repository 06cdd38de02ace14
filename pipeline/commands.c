/* commands.c — the command table: one row per command, its help text and its entry point.
 * A command whose entry point is NULL is planned but not built yet: `--help` describes it,
 * running it says so and exits 1.
 *
 * The table is compiled twice: into libvesalius_core.so, where every row names its entry
 * point, and into the lean `vesalius` front (VS_FRONT), which links only the commands that need
 * no HDF5, ITK or BLAS (their rows name the entry point bare); a row whose entry point is
 * wrapped in CORE() runs in the core library there (cli_run_core, pipeline/front.c). A new
 * command goes in CORE() unless the front links everything it needs. */
#include "cli.h"
#include "study.h"

#ifdef VS_FRONT
#define CORE(entry) cli_run_core
#else
#define CORE(entry) entry
#endif

#include <stddef.h>
#include <string.h>

int cmd_demo_cohort(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);    /* cmd_pretrain.c */
int cmd_anonymize(int argc, char **argv);   /* cmd_anonymize.c */
int cmd_verify_deid(int argc, char **argv); /* cmd_verify_deid.c */
int cmd_send(int argc, char **argv);        /* cmd_send.c */
int cmd_inspect(int argc, char **argv);     /* cmd_inspect.c */
int cmd_verify(int argc, char **argv);
int cmd_compact(int argc, char **argv);  /* cmd_compact.c */
int cmd_finetune(int argc, char **argv); /* cmd_finetune.c */
int cmd_predict(int argc, char **argv);  /* cmd_predict.c */
int cmd_split(int argc, char **argv);    /* cmd_split.c */

#define COMMON_HELP                                                                                \
    "\nCommon options:\n"                                                                          \
    "  -h, --help          show this help\n"                                                       \
    "      --log-json      log JSON lines on stderr\n"                                             \
    "      --log-level L   debug, info, warn, error or quiet\n"                                    \
    "  -j, --threads N     worker threads\n"                                                       \
    "      --distributed M auto (run across mpirun's or srun's processes) or off\n"

const cli_command cli_commands[] = {
    {"ingest", "read DICOM, de-identify and write training shards",
     "Usage: vesalius ingest SRC... --out DIR --key FILE [--study FILE] [OPTIONS]\n"
     "\n"
     "Reads DICOM files, folders and DICOMDIRs, or the new and grown series of a PACS (SRC =\n"
     "pacs://PACS_AET@host:port[?modality=CT,MR][&since=YYYYMMDD][&until=YYYYMMDD], by C-GET or\n"
     "C-MOVE; exit 8 when it cannot be reached or refuses us), assembles 3D volumes, "
     "de-identifies\n"
     "their headers in memory (DICOM PS3.15 Annex E), preprocesses them and writes HDF5 shards\n"
     "and a catalog: DIR/shards/*.h5, DIR/catalog.sqlite, DIR/ingest-summary.json, and the\n"
     "settings it used, DIR/settings.json. One series is read while the one before is written.\n"
     "Under mpirun or srun, rank 0 owns DIR and writes in one-process order while the other\n"
     "ranks read, de-identify and preprocess series it hands out: the same shards and catalog\n"
     "as one process (PACS sources stay on rank 0). A rerun adds only what is new; a series\n"
     "that gained files is rebuilt; a DIR made with other settings is refused. Every input file\n"
     "ends used, skipped or rejected with its reason. Exit 4 when something was rejected, 5\n"
     "when nothing was new, 6 when another run holds DIR (the same on every rank).\n"
     "\n"
     "  --study FILE          the settings of a study file (its deid, ingest, preprocess,\n"
     "                        shards and pacs sections; SRC and DIR default to its sources and\n"
     "                        OUTPUT/ingest); the options below override them\n"
     "  --out DIR             output folder\n"
     "  --summary FILE        write the run summary here instead of DIR/ingest-summary.json\n"
     "  --lock-timeout S      wait up to S seconds for another run's lock (default "
     "0)\n" COMMON_HELP,
     CORE(cmd_ingest), ST_INGEST | ST_PACS, CLI_RANKS},
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
     "      --linkage FILE                record original -> pseudonym in an SQLite table "
     "(0600)\n" COMMON_HELP,
     cmd_anonymize, 0, 0},
    {"verify-deid", "scan DICOM files, shards and reports for identifying data",
     "Usage: vesalius verify-deid PATH... [--phi-list FILE]\n"
     "\n"
     "Scans each file by what it holds (folders recursively) and names the file and where\n"
     "(tag path, shard attribute, line and column, byte offset), never the value. Exits 7 on\n"
     "any hit.\n"
     "  DICOM   attributes the confidentiality profile forbids, private tags, UIDs not of the\n"
     "          2.25 pseudonym form\n"
     "  shards  every object, attribute and index field the shard schema does not define, UIDs\n"
     "          other than 2.25 pseudonyms (series_instance_uid only under Retain UIDs)\n"
     "  text    reports, JSON-lines logs, any other text: UIDs of an organisation's root\n"
     "  all     every identifier listed in FILE (one per line, any case) in every value, name\n"
     "          and line, and in the raw bytes of every file\n" COMMON_HELP,
     CORE(cmd_verify_deid), 0, 0},
    {"send", "C-STORE de-identified DICOM files to a research PACS",
     "Usage: vesalius send PATH... pacs://AET@host:port [--study FILE] [OPTIONS]\n"
     "\n"
     "Sends the DICOM files under PATH (folders recursively), as they are, to a PACS by C-STORE.\n"
     "Each file is checked first as verify-deid checks it; a file with any finding is refused\n"
     "and never sent. Exit 7 when a file was refused, 4 when the peer did not store one, 8 when\n"
     "the PACS cannot be reached or refuses us. The pacs options (or a study's pacs section)\n"
     "set our AE title, the timeouts, retries and TLS.\n" COMMON_HELP,
     CORE(cmd_send), ST_PACS, 0},
    {"inspect", "describe DICOM files, shards, checkpoints or a catalog",
     "Usage: vesalius inspect PATH... [--summary FILE] [--resample] [--max-voxels N]\n"
     "\n"
     "Prints what vesalius sees in PATH: for DICOM files, folders and DICOMDIRs every volume\n"
     "(shape, voxel type, spacing, origin, direction in LPS mm, modality, file count) and the\n"
     "account of every file: used, skipped or rejected with its reason. No names, IDs or UIDs.\n"
     "For a shard file (*.h5), a shard folder or an ingest output folder: every volume and its\n"
     "attributes. Exits 4 when some DICOM input was rejected.\n"
     "\n"
     "  --summary FILE   also write the run summary as JSON\n"
     "  --resample       resample series with missing slices or uneven spacing (default: reject)\n"
     "  --max-voxels N   reject images and volumes of more than N voxels (default "
     "2^31)\n" COMMON_HELP,
     CORE(cmd_inspect), 0, 0},
    {"verify", "re-check every shard checksum in an ingest output folder",
     "Usage: vesalius verify DIR\n"
     "Re-reads every volume of every shard in DIR/shards (or DIR) and compares it with its\n"
     "SHA-256 checksum. Reports each corrupt shard or volume on its own line and goes on.\n"
     "Exits 0 when everything is intact, 1 when anything is corrupt.\n" COMMON_HELP,
     CORE(cmd_verify), 0, 0},
    {"compact", "rewrite shards left mostly dead by rebuilt series",
     "Usage: vesalius compact DIR [--min-live F] [--shard-mb N] [--lock-timeout S]\n"
     "\n"
     "A series rebuilt by a later ingest leaves its old volume, dead, in an older shard. Every\n"
     "shard of DIR whose live share (live voxels / all voxels) is below F has its live volumes\n"
     "copied into new shards (checksums checked); the catalog moves them in one transaction per\n"
     "new shard, and the emptied shards are deleted last. Safe to kill at any point: the next\n"
     "compact or ingest finishes the job. Takes the same lock as ingest; run it between\n"
     "training runs. Exits 0 when it compacted, 5 when no shard was below F, 6 when busy.\n"
     "\n"
     "  --min-live F       live share below which a shard is rewritten (default 0.5)\n"
     "  --shard-mb N       close a new shard at N MiB (default 1024; fractions allowed)\n"
     "  --lock-timeout S   wait up to S seconds for another run's lock (default 0)\n" COMMON_HELP,
     CORE(cmd_compact), 0, 0},
    {"split", "give every labeled patient a role: train, dev or test",
     "Usage: vesalius split --shards DIR --labels CSV --key FILE --out DIR [--study FILE] "
     "[OPTIONS]\n"
     "\n"
     "The comparison protocol's cohorts (studies/splits.h): the patients of the labeled series in\n"
     "the shard folder, stratified by their volume label, become train, dev (where recipes are\n"
     "chosen) or test (held out: pretraining leaves them out, fine-tuning only predicts them),\n"
     "deterministically from the seed and the set of patient keys. Labels name ORIGINAL\n"
     "SeriesInstanceUIDs and are mapped through the site key (--key). Writes DIR/splits.csv and\n"
     "the settings it used, DIR/settings.json.\n"
     "\n"
     "  --study FILE          the settings of a study file (seed, the key, the labels section,\n"
     "                        finetune.dev_share and test_share); --shards OUTPUT/ingest/shards\n"
     "                        and --out OUTPUT/split unless given\n"
     "  --shards DIR          shard folder\n"
     "  --out DIR             output folder\n"
     "  --labels CSV          LUNA16 points: seriesuid,coordX,coordY,coordZ,diameter_mm\n"
     "  --masks DIR           label maps named SERIESUID.nii.gz/.nii/.nrrd/.mha\n" COMMON_HELP,
     CORE(cmd_split), ST_SPLIT, 0},
    {"pretrain", "pretrain the 3D masked autoencoder on shards",
     "Usage: vesalius pretrain --out DIR (--shards DIR | --synthetic N) [--study FILE] [OPTIONS]\n"
     "\n"
     "Trains the masked autoencoder (ViT encoder over the visible patches, 75% masking) on\n"
     "random crops, writing DIR/checkpoint.ckpt (every --checkpoint-every steps, at the end and\n"
     "on SIGINT/SIGTERM; resumes bit-exactly), DIR/model.safetensors (the PyTorch twin's\n"
     "state_dict names), DIR/preview.png (a mid slice: input | masked | recon) and the settings\n"
     "it ran with, DIR/settings.json.\n"
     "\n"
     "  --study FILE          the settings of a study file (seed, threads, pretrain section);\n"
     "                        the options below override them\n"
     "  --out DIR             output folder\n"
     "  --shards DIR          an ingest output folder (or its shards/): random crops, padded\n"
     "                        where a volume is smaller than the crop\n"
     "  --synthetic N         N phantom CT volumes, windowed to [0, 1]: a smoke test of the loop\n"
     "  --synthetic-size Z,Y,X  their size (default: crop + 8 per axis, 1 for 2D crops)\n"
     "  --resume              continue DIR/checkpoint.ckpt (the settings must match "
     "it)\n"
     "  --split FILE          a split's splits.csv (`vesalius split`): leave out every volume of\n"
     "                        its test patients (unless --include-test); DIR/pool.json says what\n"
     "                        was left out\n" COMMON_HELP,
     CORE(cmd_pretrain), ST_PRETRAIN, CLI_RANKS | CLI_OMP_PASSIVE},
    {"finetune", "fine-tune the tumor detector on labeled volumes",
     "Usage: vesalius finetune --shards DIR --labels CSV --split FILE --out DIR [--init "
     "CHECKPOINT]\n"
     "       [OPTIONS]\n"
     "\n"
     "Trains the detector on the labeled volumes of the shard folder once per label budget and\n"
     "seed (finetune.budgets x finetune.seeds), from a pretraining checkpoint (arm mae) or from\n"
     "scratch (arm scratch) by the same code path. The split (`vesalius split`) says who is who:\n"
     "budget B of seed S trains on the first B training patients of seed S's order (nested), the\n"
     "dev patients alone serve early stopping, and the test patients are only predicted. Fit S\n"
     "starts from the same initialisation and crops in both arms (paired).\n"
     "Labels name ORIGINAL SeriesInstanceUIDs and are mapped through the site key (--key).\n"
     "Writes DIR/splits.csv (the split used), labels.csv (dev and test series), ARM-bB-sS.det,\n"
     "train-ARM-bB-sS.jsonl, predictions-ARM.csv/.jsonl (the forms `vesalius validate` reads;\n"
     "columns arm, budget, seed, set) and settings.json. With finetune.members M > 1 a fit\n"
     "trains M detectors on its volumes (ARM-bB-sS.det and ARM-bB-sS-mK.det, K = 1..M-1, each\n"
     "with its log) and predicts with the mean of their probabilities.\n"
     "\n"
     "  --study FILE          the settings of a study file (seed, threads, the key, the labels\n"
     "                        and finetune sections, the pretrain section's encoder shape and\n"
     "                        augmentations); --shards OUTPUT/ingest/shards, --split\n"
     "                        OUTPUT/split/splits.csv and --out OUTPUT/finetune-ARM unless given;\n"
     "                        the options below override them\n"
     "  --shards DIR          shard folder\n"
     "  --split FILE          the split's splits.csv\n"
     "  --out DIR             output folder\n"
     "  --labels CSV          LUNA16 points: seriesuid,coordX,coordY,coordZ,diameter_mm (LPS mm)\n"
     "  --masks DIR           label maps named SERIESUID.nii.gz/.nii/.nrrd/.mha\n"
     "  --init CHECKPOINT     pretraining checkpoint: the arm mae, whose encoder shape and crop\n"
     "                        come from it (the encoder options are refused with it)\n"
     "  --arm mae|scratch     name of the arm (default: mae with --init, else scratch)\n"
     "  --only-budget B  --only-seed S   run only these fits (B: training patients)\n"
     "  --fit I               run only fit I of the fit order (budgets ascending, then seeds;\n"
     "                        0 to budgets x seeds - 1: a SLURM array task's\n"
     "                        $SLURM_ARRAY_TASK_ID) and write its part of the merged files:\n"
     "                        predictions-ARM-bB-sS.csv/.jsonl, fits-ARM-bB-sS.csv and\n"
     "                        settings-ARM-bB-sS.json\n"
     "  --merge               train nothing: write the merged files from the parts of every\n"
     "                        fit (run with the options the --fit runs had)\n"
     "\n"
     "Under mpirun or srun (N processes) fit I runs on rank I mod N and rank 0 writes the merged\n"
     "files; with --fit and --merge or N ranks, every file is the bytes of a one-process run\n"
     "with the same thread count.\n" COMMON_HELP,
     CORE(cmd_finetune), ST_FINETUNE, CLI_RANKS},
    {"predict", "detect lesions in volumes with a trained detector",
     "Usage: vesalius predict --model CHECKPOINT... --shards DIR --out FILE.csv [OPTIONS]\n"
     "\n"
     "--model is repeatable: several detectors (a fit's ARM-bB-sS.det and ARM-bB-sS-mK.det)\n"
     "predict as their ensemble, each cell's probability the mean of theirs.\n"
     "Sliding-window inference over whole volumes of any size (windows every 3/4 window, merged\n"
     "per heatmap cell with tent weights), candidates after non-maximum suppression with LPS\n"
     "position (mm), probability and diameter (mm), and a volume row whose probability is the\n"
     "highest cell probability.\n"
     "\n"
     "  --json FILE           also as JSON lines\n"
     "  --heatmaps DIR        merged objectness per volume as DIR/SERIES.nii.gz\n"
     "  --series KEY          only this volume (repeatable)\n"
     "  --arm mae|scratch (mae)  --budget N (0)  --seed N (0)  --set test|dev (test)\n"
     "                        values of the arm, budget, seed and set columns\n"
     "  --min-prob X (0.01)  --max-candidates N (50)  --nms-mm X (6)  --batch B (4)\n"
     "  --flips 0|1 (0)       also average the 7 mirrored volumes (8x the time)\n" COMMON_HELP,
     CORE(cmd_predict), 0, 0},
    {"validate", "compute ROC/AUC, FROC/CPM with confidence intervals and write a report",
     "Usage: vesalius validate --predictions FILE... --labels FILE --out DIR [OPTIONS]\n"
     "\n"
     "Writes report.json, report.md and report.html: ROC and AUC, FROC and CPM (LUNA16),\n"
     "bootstrap confidence intervals, k-fold results and full provenance, and the settings it\n"
     "used, settings.json. Input forms are in validation/FORMATS.md, the report.json schema in\n"
     "validation/REPORT_SCHEMA.md.\n"
     "\n"
     "  --predictions FILE...  candidates and volume scores (CSV or JSON lines); repeatable\n"
     "  --labels FILE          lesions and volume labels (CSV or JSON lines)\n"
     "  --out DIR              where the report files go (created if missing)\n"
     "  --train-log [NAME=]FILE  JSON-lines training log (\"train.step\" events); repeatable\n"
     "  --preview [NAME=]PNG   MAE reconstruction preview to embed; repeatable\n"
     "  --study FILE           the settings of a study file (seed, validate section; its SHA-256\n"
     "                        goes into the provenance); the options below override them\n"
     "  --shards DIR           shard folder (SHA-256 of its *.h5 set goes into the provenance)\n"
     "  --record-seed NAME=N   a seed used upstream, recorded in the provenance; repeatable\n"
     "  --stage-settings NAME=FILE  the settings.json of an upstream stage, recorded in the\n"
     "                        provenance; repeatable\n" COMMON_HELP,
     CORE(cmd_validate), ST_VALIDATE, 0},
    {"run", "run a whole study from its YAML file, resumably",
     "Usage: vesalius run STUDY.yaml [--stages LIST] [--from STAGE] [--dry-run] [--lock-timeout "
     "S]\n"
     "\n"
     "Runs the study's stages in order (ingest, split, pretrain, finetune-mae, finetune-scratch,\n"
     "validate; split and the last three when the study has labels), each as its own process\n"
     "with its log\n"
     "in OUT/logs/STAGE.jsonl. Each stage records the settings it ran with (every key it reads,\n"
     "label files by content, the site key by a keyed fingerprint) and what it consumed and\n"
     "produced (SHA-256) in OUT/stages/STAGE.json. A stage runs again when one of its settings,\n"
     "one of its input files or an earlier stage it consumes changed, and is skipped otherwise;\n"
     "ingest always looks for new files, and starts over when one of its settings changed.\n"
     "Killed at any point (even kill -9), a rerun continues where it was: pretraining resumes its\n"
     "checkpoint. The run log is OUT/run.jsonl.\n"
     "\n"
     "  --stages LIST     only these stages (comma-separated)\n"
     "  --from STAGE      run STAGE and every later stage even if up to date\n"
     "  --dry-run         print the plan and, for each stage that would run, which settings,\n"
     "                    inputs or earlier stages changed; change nothing\n"
     "  --lock-timeout S  wait up to S seconds for another run of this study (default 0)\n"
     "\n"
     "Exit: 0 done, 4 done with rejected inputs, 5 nothing to do, 6 another run holds the\n"
     "output folder, 1 a stage failed, 2 a study-file error (file, line and key "
     "named).\n" COMMON_HELP,
     CORE(cmd_run), 0, 0},
    {"demo-cohort", "write the synthetic demo cohort (DICOM with planted identifiers and tumours)",
     "Usage: vesalius demo-cohort --out DIR [--unlabeled N] [--labeled N] [--radiographs N]\n"
     "                            [--matrix N] [--slices MIN:MAX] [--positive-share F] [--seed S]\n"
     "                            [--contrast K] [--diameter MIN:MAX] [--subtle-share F]\n"
     "                            [--cyst-share F] [--labeled-modality CT|MR]\n"
     "\n"
     "Writes procedural CT and MR studies (anatomy with liver vessels, noise, MR bias fields,\n"
     "varied spacing, orientation, slice order and transfer syntax), a few radiographs, fake\n"
     "identifying values in the headers, and a labeled subset with tumours: DIR/dicom/,\n"
     "DIR/labels/annotations.csv (LUNA16 style, LPS mm), DIR/labels/volumes.csv,\n"
     "DIR/labels/lookalikes.csv (the cysts of labeled volumes: not tumours) and DIR/phi.txt\n"
     "(every planted identifier).\n"
     "Defaults: 200 unlabeled + 40 labeled volumes (half with tumours), 8 radiographs, 128x128\n"
     "slices of 2.7-3.3 mm, 40-64 slices; tumours 8-30 mm with a density relative to their organ\n"
     "(liver mostly darker, some brighter; kidney, spleen; lung nodules solid or part-solid),\n"
     "soft irregular edges, some with a rim or necrosis, 20% subtle (half the contrast); water-\n"
     "dense cysts in 35% of volumes as lookalikes; --contrast K multiplies tumour contrast.\n"
     "The same seed writes the same bytes.\n" COMMON_HELP,
     CORE(cmd_demo_cohort), 0, 0},
};

const int cli_n_commands = (int)(sizeof cli_commands / sizeof cli_commands[0]);

const cli_command *cli_find(const char *name) {
    for (int i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i].name, name) == 0) return &cli_commands[i];
    return NULL;
}
