// Experiment configuration: the resolved, validated options of one experiment.
//
// A config file is TOML with sections data, fm, pretrain, probes, dne, vae, gezo, zo, nes, comm, api,
// sweep, output, run.
// Most keys belong to an experiment (ExperimentConfig); the few that describe the whole run
// (RunConfig: output directory, threads, device, backend, rank groups) are read once.
// Every key is declared once in a table (key_table.cpp) with its type, default, range and the
// field it fills; the table drives parsing, `--set` overrides, validation, canonical text
// and `--help-config`. A list value is a sweep axis: `expand()` turns one file into the
// cartesian product of experiments; `[[grid]]` tables make the sweep a union of such products
// (e.g. a lambda ablation plus a local-epoch ablation in one file). No Torch, MPI or HDF5 here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace dne::config {

struct DataOptions {
  std::string source = "phantom";  // "phantom" | "manifest" | "embeddings"
  std::string manifest;            // CSV path when source = "manifest"
  std::string embeddings;          // HDF5 file of precomputed embeddings when source = "embeddings"
  std::string embeddings_group;    // its group holding train/ and test/ ("" = "/" or "/embeddings", found)
  std::string sa_column = "sex";   // manifest: column with the binary sensitive attribute
  std::string resize = "stretch";  // manifest: "stretch" | "crop" | "pad" (aspect kept)
  std::int64_t limit_train = 0;    // manifest: at most this many train (+ val) rows; 0 = all
  std::int64_t limit_test = 0;     // manifest: at most this many test rows; 0 = all
  std::string image_hash = "content";  // manifest: "content" | "stat" (size + mtime) in the id
  std::int64_t max_pixels = 50000000;  // manifest: larger images (by their header) are refused undecoded
  std::int64_t image_size = 64;    // H = W
  std::int64_t n_train = 2000;
  std::int64_t n_test = 1000;
  std::int64_t n_val = 0;           // phantom: a validation split drawn like the test split; 0 = none
  double bias = 0.9;               // train: P(a=1 | y=1) = bias, P(a=1 | y=0) = 1 - bias
  double prevalence = 0.5;
  double breast_contrast = 1.0;
  double marker_rate_a1 = 0.7;
  double marker_rate_a0 = 0.3;
  double severity_min = 0.15;
  double severity_max = 1.0;
  double noise_std = 0.02;
  double age_effect = 0.0;         // phantom: how much age widens the heart (0 = age not visible)
  double age_bias = 0.0;           // phantom: train correlation of age with the disease
  double val_fraction = 0.0;       // share of each (sa, label) cell of train moved to validation
  std::string resample = "none";   // per seed: "none" | "subsample" | "bootstrap" of the training split
  double resample_fraction = 0.8;  // data.resample = "subsample": share of every (sa, label) cell kept
  double poison_rate = 0.0;        // label poisoning: share of group poison_group's train labels flipped
  std::int64_t poison_group = 1;   // the sensitive group whose train labels are poisoned
};

struct FmOptions {
  std::string kind = "cnn";        // "cnn" | "vit" | "torchscript" | "remote" (an Open Inference Protocol server, [api])
  std::string torchscript;         // path to a TorchScript encoder (kind = "torchscript")
  std::string weights;             // FM file (docs/fm-file.md) for kind = "vit"; "" = random weights
  std::int64_t width = 32;         // channels of the first CNN stage (doubles per stage)
  std::int64_t embed_dim = 256;    // CNN output dimension; ViT width D
  std::int64_t patch_size = 8;     // ViT patch side P (image_size must be a multiple)
  std::int64_t depth = 4;          // ViT blocks
  std::int64_t heads = 4;          // ViT attention heads (divide embed_dim)
  double mlp_ratio = 4.0;          // ViT MLP hidden width / D
  std::int64_t in_chans = 1;       // channels the ViT's weights expect (grayscale is replicated)
  std::string pool = "mean";       // ViT embedding: "cls" token or "mean" of the patch tokens
  std::string mean = "0.5";        // input normalisation: 1 value or one per channel, "a,b,c"
  std::string std = "0.25";
  std::int64_t batch_size = 250;   // images per forward call when embedding a split
};

/// MAE pretraining of the built-in ViT (`dne pretrain`); not part of any experiment id.
struct PretrainOptions {
  std::int64_t steps = 2000;         // optimiser steps
  std::int64_t batch_size = 64;      // images per step (all ranks together)
  std::int64_t micro_batches = 4;    // fixed split of each batch: the unit of work of a rank
  double lr = 1e-3;                  // peak AdamW learning rate
  std::int64_t warmup_steps = 100;   // linear warm-up, then cosine decay to 0
  double weight_decay = 0.05;        // AdamW decay on matrices (not on biases, norms, tokens)
  double mask_ratio = 0.75;          // share of patches hidden from the encoder
  std::int64_t decoder_width = 64;
  std::int64_t decoder_depth = 2;
  std::int64_t decoder_heads = 4;
  bool norm_pix_loss = true;         // targets normalised per patch (mean 0, variance 1)
  std::int64_t checkpoint_every = 100;  // steps between checkpoints (0 = never)
};

struct ProbeOptions {
  double l2 = 1e-3;                // L2 penalty of the logistic probes (on standardised inputs)
  std::int64_t max_iter = 200;     // L-BFGS iterations
  std::string l2_choices;          // "1e-4,1e-3,...": the disease probe's L2 chosen on validation
};

struct DneOptions {
  std::string method = "whitebox";   // a method of config/methods.hpp: none, random, whitebox, gezo, rge, spsa, nes, vae
  std::string objective = "neg_ce";  // "neg_ce" | "confusion"
  double lambda = 1e-3;              // weight of ||eps||_2
  double lambda_1 = 1.0;             // weight of the SA term
  std::int64_t epochs = 3;
  double lr = 0.01;                  // Adam learning rate on eps
  std::int64_t batch_size = 100;
  double random_l2 = 17.0;           // ||eps||_2 of the "random" control (i.i.d. Gaussian noise)
  double max_linf = 0.0;             // noise budget: |eps| <= max_linf per pixel (0 = unbounded)
  double max_l2 = 0.0;               // noise budget: ||eps||_2 <= max_l2 (0 = unbounded)
  bool clip_images = false;          // clamp x + eps to the pixel range [0, 1]
  std::string adversary = "frozen";  // "frozen": g fitted once on clean embeddings | "refit"
  std::int64_t refit_every = 10;     // adversary = "refit": batches between refits of g
  std::string keep = "last";         // "last" | "best_val": the epoch-end noise with the lowest validation loss
  std::string noise_basis = "pixel";  // what the editor optimises: "pixel" | "lowres" | "dct" (dne/noise_basis.hpp)
  std::int64_t noise_dim = 8;        // lowres / dct: k, theta is k x k coefficients
  std::int64_t eval_every = 0;       // the noise's effect on the validation split every this many queries; 0 = off
};

/// The adversarial VAE (dne.method = "vae"; vae/adversarial_vae.hpp): its architecture and training.
struct VaeOptions {
  std::int64_t latent = 32;          // latent size L
  std::string hidden = "128";        // encoder widths "256,128" (the decoder mirrors them)
  double beta = 1e-3;                // KL weight
  double adversary_weight = 1.0;     // weight of the adversarial term (the control runs it at 0)
  double age_weight = 1.0;           // weight of the age adversary next to sex's 1 (data with an age)
  std::int64_t adversary_steps = 5;  // head steps before every encoder step
  std::string adversary_objective = "neg_loss";  // "neg_loss" (gradient reversal) | "confusion"
  double disease_weight = 0.0;       // weight of an optional disease head on the latent mean
  std::int64_t epochs = 50;
  std::int64_t batch_size = 128;
  double lr = 1e-3;                  // Adam
};

/// The zeroth-order editors' options (gezo, rge, spsa, nes): the [zo] keys they all read (C = candidates;
/// RGE/SPSA/NES: directions q), GeZO's own [gezo] keys and NES's [nes] key.
struct ZerothOrderOptions {
  std::int64_t local_epochs = 2;   // R: local iterations on each batch (GeZO)
  std::int64_t candidates = 8;     // C: perturbations per iteration (+ and - each)
  double sigma = 0.05;             // perturbation scale (GeZO's sigma; RGE/SPSA's mu)
  double momentum = 0.5;           // GeZO velocity decay m
  double sigma_decay = 0.5;        // GeZO: sigma *= decay when no candidate improves
  double sigma_min = 1e-4;         // GeZO: sigma never decays below this
  std::string on_reject = "keep";  // GeZO, a rejected iteration: "keep" the velocity (the paper's) | "decay" it by m
  double sigma_growth = 1.0;       // GeZO: sigma *= growth on an accepted iteration, up to zo.sigma (1 = never grows)
  std::int64_t budget = 0;         // images the editor may send to the API; 0 = unlimited
  std::string optimizer = "adam";  // RGE/SPSA update: "sgd" | "adam"
  double lr = 0.01;                // RGE/SPSA/NES learning rate
  std::string shaping = "rank";    // NES (key nes.shaping): "rank": centred ranks of the 2q losses | "none": the losses
};

/// How a rank group shares one zeroth-order experiment.
struct CommOptions {
  std::string mode = "seed";       // "seed": only losses cross the network | "dense": gradient estimates
  std::string split = "candidates";  // "candidates" | "data" (each rank a share of the batch)
};

/// Simulated black-box API behaviour (all off by default).
struct ApiOptions {
  std::int64_t max_batch = 0;      // images per call; 0 = unlimited
  double latency_ms = 0.0;         // added wall time per call (in-process models only)
  std::int64_t round_decimals = -1;  // round returned embeddings to this many decimals; -1 = off
  // fm.kind = "remote": the server (url and model enter the experiment id, the rest does not)
  std::string url;                 // http[s]://host:port[/prefix]
  std::string model;               // model name on the server
  std::int64_t concurrency = 1;    // requests in flight per rank
  double timeout_s = 30.0;         // connect / read / write timeout of one attempt
  std::int64_t retries = 4;        // extra attempts on connection errors, 429 and 5xx
  std::string token_env;           // environment variable holding the bearer token; "" = none
  bool binary = false;             // Triton binary tensor extension instead of JSON numbers
};

struct SweepOptions {
  std::int64_t seed = 0;           // `sweep.seeds`: one seed per experiment (a list is an axis)
};

struct RunOptions {
  // An experiment's, not the run's: a sweep may compare precisions (in the id when not fp32).
  std::string precision = "fp32";  // FM forwards on the GPU: "fp32" | "tf32" | "bf16" (autocast); the CPU runs fp32
};

/// The keys that describe the whole run rather than one experiment. They take one value per run
/// (a list or a [[grid]] value is a ConfigError naming the key), are read once by
/// read_run_config, and are in no ExperimentConfig; none changes a result, so none is in an id.
/// config/run_settings.hpp resolves them against the machine (device, backend).
struct RunConfig {
  std::string output_dir = "runs/default";  // output.dir
  bool save_embeddings = false;  // output.save_embeddings: also write /embeddings/<split>/{x,label,sa[,age]}
  std::int64_t threads = 1;      // run.threads: Torch intra-op threads per rank (0 = cores / ranks on the node)
  std::string device = "auto";   // run.device: "auto" (cuda when LibTorch has CUDA and a device is visible) | "cpu" | "cuda"
  std::string backend = "auto";  // comm.backend: "auto" (NCCL on cuda with groups > 1) | "mpi" | "nccl"
  double comm_timeout_s = 600.0;  // comm.timeout_s: a sum unfinished by then is a dead or hung peer (NCCL)
  std::int64_t ranks_per_experiment = 1;  // sweep.ranks_per_experiment: ranks sharing one experiment
};

/// The resolved options of exactly one experiment.
struct ExperimentConfig {
  DataOptions data;
  FmOptions fm;
  PretrainOptions pretrain;
  ProbeOptions probes;
  DneOptions dne;
  VaeOptions vae;
  ZerothOrderOptions zo;
  CommOptions comm;
  ApiOptions api;
  RunOptions run;
  SweepOptions sweep;

  /// Content hash of the FM file named by fm.weights (its architecture and weights), or of the
  /// bytes of fm.torchscript (set by the run driver after loading it;
  /// empty when there is none). It enters canonical_text() and so the id.
  std::string fm_hash;
  /// Content hash of the data an experiment reads with data.source = "manifest" (the manifest's
  /// bytes and every image it uses) or "embeddings" (the file's bytes and the group), set by the
  /// run driver's preflight. It enters the id too.
  std::string data_hash;
  /// Train (+ val) and test rows of that manifest in use (set by the preflight; -1 when unknown):
  /// what the cost estimate counts instead of data.n_train / data.n_test.
  std::int64_t data_rows_train = -1, data_rows_test = -1;

  /// The "# ... content hash: ..." lines of fm_hash and data_hash that end the canonical text.
  std::string input_hashes_text() const;

  /// Canonical TOML text of every result-affecting key, in table order (no output/run/pretrain
  /// keys), plus the FM file's content hash when there is one.
  std::string canonical_text() const;
  /// Canonical text of what `dne pretrain` reads: [data], the ViT architecture keys of [fm],
  /// [pretrain] and sweep.seeds (and the data hash of a manifest). Two configs with the same text
  /// pretrain the same bits.
  std::string pretrain_text() const;
  /// Full resolved TOML of the experiment's keys (canonical text + the keys that change no
  /// result); config::resolved_text(c, run) adds the run-wide keys.
  std::string resolved_text() const;
  /// Stable id: 16 hex digits of FNV-1a-64 over canonical_text().
  std::string id() const;
};

/// Every key at its default: the one place a default is written (the structs above). The
/// components' own option structs (data::PhantomOptions, data::ManifestOptions,
/// data::DecodeOptions, vae::VaeOptions, fm::ApiOptions, api::ClientOptions, ...) start from
/// these values, so a component and `--help-config` can never disagree. Built once, immutable.
const ExperimentConfig& defaults();

/// One config value as written in TOML.
using Value = std::variant<std::int64_t, double, std::string, bool>;

/// A parsed but not yet expanded config: each key maps to one value or to a list (a sweep axis).
struct ConfigSource {
  std::string origin;                                    // file name, for messages
  std::map<std::string, std::vector<Value>> values;      // key -> values (size > 1: axis)
  std::vector<std::string> axes;                         // keys that vary (lists, grid keys), table order
  /// `[[grid]]` tables: each one is a sub-sweep whose keys replace the base's; the experiments
  /// are the union of every grid's product (duplicates once). Empty: the base alone is the sweep.
  std::vector<std::map<std::string, std::vector<Value>>> grids;
  /// Former key names the config used, each once: "gezo.candidates is now zo.candidates" (read
  /// as the new key; the id is the same). `dne run` says them on one line each.
  std::vector<std::string> deprecated;
};

/// Parse TOML text. Throws ConfigError "ORIGIN:LINE:COL: ..." on syntax errors, unknown keys,
/// wrong types and out-of-range values.
ConfigSource parse_text(const std::string& text, const std::string& origin);
/// Read and parse a file (ConfigError if missing or unreadable).
ConfigSource parse_file(const std::string& path);
/// `source` without the keys `dne pretrain` does not read (dne.*, gezo.*, zo.*, nes.*, comm.*, api.*,
/// vae.*, probes.*): a sweep config whose dne.method is a list pretrains its FM as it is.
ConfigSource pretraining_source(ConfigSource source);
/// The keys `source` sets that no experiment of `experiments` (its expansion) reads because they
/// belong to another data.source or fm.kind (they collapsed to their defaults; keys of other
/// methods collapse too, silently, as they always have). One entry per key, "fm.weights (read
/// only when fm.kind = vit)", in key-table order; `dne run` says them once.
std::vector<std::string> unread_keys(const ConfigSource& source, const std::vector<ExperimentConfig>& experiments);
/// Apply one `key=value` override (value parsed as TOML, bare words as strings; `[a,b]` lists).
void apply_override(ConfigSource& source, const std::string& assignment);

/// Set one key to one value directly (no TOML parsing: any path text is kept as it is).
void set_value(ConfigSource& source, const std::string& key, const Value& value);

/// Cartesian product of all axes, in a stable order; each result validated. The run-wide keys
/// are checked to have one value each (read them with read_run_config).
std::vector<ExperimentConfig> expand(const ConfigSource& source);

/// The run-wide keys of `source` (RunConfig), validated; ConfigError naming a key given as a
/// list or in a [[grid]] table, or an empty output.dir.
RunConfig read_run_config(const ConfigSource& source);

/// The resolved TOML of one experiment of a run: its keys and the run's, in table order (what an
/// experiment file stores as /config, and what parse_text reads back).
std::string resolved_text(const ExperimentConfig& config, const RunConfig& run);

/// A value as TOML writes it: 3, 0.5, true, "text" (floats in their shortest round-trip form).
std::string format_value(const Value& v);

/// The value of `key` in a resolved experiment (ConfigError for an unknown or run-wide key).
Value get_value(const ExperimentConfig& config, const std::string& key);

/// The `dne.method` values that read `key` (every method for keys that are not method-specific);
/// ConfigError for an unknown key. Stored in index.h5 so that analysis needs no copy of the table.
std::vector<std::string> methods_reading(const std::string& key);
/// The method-specific keys `method` reads (the keys of the method registry's entry: those tagged
/// for some methods only, this one among them), in key-table order; ConfigError for an unknown
/// method. Every method also reads the keys that are not method-specific (data.*, fm.*, ...).
std::vector<std::string> method_keys(const std::string& method);

/// "a,b,c" -> {a, b, c}: finite numbers separated by commas; anything else throws ConfigError
/// naming `key`.
std::vector<double> number_list(const std::string& text, const std::string& key);

/// The per-channel values of fm.mean or fm.std ("0.5" or "0.485,0.456,0.406") for `channels`
/// input channels (one value is repeated); the preset "chest_xray" is the DNE reference code's
/// chest X-ray normalisation (mean 0.5056, std 0.252). ConfigError naming `key` when the text is
/// not 1 or `channels` finite numbers, or (for fm.std) a value is not positive.

std::vector<double> channel_values(const std::string& text, std::int64_t channels, const std::string& key);

/// Human-readable table of every key: name, type, default, allowed range, description.
std::string describe_keys();

}  // namespace dne::config
