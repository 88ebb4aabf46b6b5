// Config parsing, overrides, validation, sweep expansion and experiment ids (see config.hpp).
//
// The key table below is the single place where a config key is declared: its TOML name,
// type, default (from the option structs), allowed range or choices, help text, whether it
// changes results (and so the experiment id), and the field it fills.
#include "dne/config/config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"

namespace dne::config {
namespace {

enum class Kind { kInt, kReal, kString, kBool, kChoice };

struct KeySpec {
  std::string name;
  Kind kind;
  std::string help;
  double min = 0.0, max = 0.0;          // inclusive range for kInt / kReal
  std::vector<std::string> choices;     // for kChoice
  bool affects_results = true;          // part of canonical text / id
  bool pretrain_only = false;           // read by `dne pretrain` only: in pretrain_text(), not in experiments
  std::vector<std::string> methods;     // dne.method values that read this key (empty: all)
  std::string data_source;              // the data.source that reads this key (empty: every source)
  std::vector<std::string> fm_kinds;    // fm.kind values that read this key (empty: all)
  bool omitted_at_default = false;      // left out of canonical/pretrain text at its default value
  bool run_wide = false;                // a RunConfig key (set_run / get_run), in no experiment
  bool numbers_as_text = false;         // kString holding numbers ("0.5", "256,128"): a number is taken as its text
  std::function<void(ExperimentConfig&, const Value&)> set;
  std::function<Value(const ExperimentConfig&)> get;
  std::function<void(RunConfig&, const Value&)> set_run;
  std::function<Value(const RunConfig&)> get_run;
};

/// `target.*field = v`, converting an integer to a real where the field is one.
template <class Field>
void assign(Field& target, const Value& v) {
  if constexpr (std::is_same_v<Field, std::int64_t>) {
    target = std::get<std::int64_t>(v);
  } else if constexpr (std::is_same_v<Field, double>) {
    target = std::holds_alternative<double>(v) ? std::get<double>(v) : static_cast<double>(std::get<std::int64_t>(v));
  } else if constexpr (std::is_same_v<Field, bool>) {
    target = std::get<bool>(v);
  } else {
    target = std::get<std::string>(v);
  }
}

template <class Section, class Field>
KeySpec make_key(std::string name, Kind kind, Section ExperimentConfig::*section,
                 Field Section::*field, std::string help) {
  KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  k.help = std::move(help);
  k.set = [section, field](ExperimentConfig& c, const Value& v) { assign((c.*section).*field, v); };
  k.get = [section, field](const ExperimentConfig& c) -> Value { return (c.*section).*field; };
  return k;
}

/// A run-wide key (RunConfig): one value per run, not in any experiment or id.
template <class Field>
KeySpec make_run_key(std::string name, Kind kind, Field RunConfig::*field, std::string help) {
  KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  k.help = std::move(help) + " [one value per run]";
  k.affects_results = false;
  k.run_wide = true;
  k.set_run = [field](RunConfig& r, const Value& v) { assign(r.*field, v); };
  k.get_run = [field](const RunConfig& r) -> Value { return r.*field; };
  const std::string key = k.name;
  k.set = [key](ExperimentConfig&, const Value&) { throw ConfigError("internal: " + key + " is a run-wide key"); };
  k.get = [key](const ExperimentConfig&) -> Value { throw ConfigError(key + " applies to the whole run, not to one experiment"); };
  return k;
}

KeySpec ranged(KeySpec k, double lo, double hi) {
  k.min = lo;
  k.max = hi;
  return k;
}
KeySpec choice(KeySpec k, std::vector<std::string> choices) {
  k.choices = std::move(choices);
  return k;
}
/// Only these methods read the key; for others it collapses to its default (no extra experiments).
KeySpec for_methods(KeySpec k, std::vector<std::string> methods) {
  k.methods = std::move(methods);
  return k;
}
/// Only data.source = `data_source` reads the key: setting it for the other source is an error,
/// and it is left out of that source's canonical and resolved text.
KeySpec for_source(KeySpec k, std::string data_source) {
  k.data_source = std::move(data_source);
  return k;
}
/// A key added after ids were published: at its default it is left out of the canonical and
/// pretraining text, so configs that do not use it keep their ids (and FM files their hash).
KeySpec added_later(KeySpec k) {
  k.omitted_at_default = true;
  return k;
}
KeySpec not_in_id(KeySpec k) {
  k.affects_results = false;
  return k;
}
/// Only these fm.kind values read the key; for other kinds it collapses to its default, like a
/// method key (so fm.kind can be an axis, and `--set fm.kind=cnn` drops a ViT's keys).
KeySpec for_fm_kinds(KeySpec k, std::vector<std::string> kinds) {
  k.fm_kinds = std::move(kinds);
  return k;
}
/// A string key whose text is numbers (fm.mean = "0.5", vae.hidden = "128"): `--set fm.mean=0.5`
/// or `mean = 0.5` in a file is taken as that number's text.
KeySpec numbers_as_text(KeySpec k) {
  k.numbers_as_text = true;
  return k;
}
KeySpec pretrain_key(KeySpec k) {
  k.pretrain_only = true;
  return k;
}

const std::vector<KeySpec>& key_table() {
  using C = ExperimentConfig;
  static const std::vector<KeySpec> table = [] {
    std::vector<KeySpec> t;
    // data
    t.push_back(choice(make_key("data.source", Kind::kChoice, &C::data, &DataOptions::source,
                                "where the data come from: generated phantom images, a manifest of image "
                                "files, or precomputed embeddings (HDF5; docs/datasets.md)"),
                       {"phantom", "manifest", "embeddings"}));
    const auto phantom = [](KeySpec k) { return for_source(std::move(k), "phantom"); };
    const auto manifest = [](KeySpec k) { return for_source(std::move(k), "manifest"); };
    const auto embeddings = [](KeySpec k) { return for_source(std::move(k), "embeddings"); };
    t.push_back(embeddings(make_key("data.embeddings", Kind::kString, &C::data, &DataOptions::embeddings,
                                    "HDF5 file of embeddings: train/x (N, D), train/label, train/sa [, train/age], the "
                                    "same under test/ [and val/] (docs/datasets.md); e.g. an output.save_embeddings file")));
    t.push_back(embeddings(make_key("data.embeddings_group", Kind::kString, &C::data, &DataOptions::embeddings_group,
                                    "the group of data.embeddings holding train/ and test/; empty = \"/\", or "
                                    "\"/embeddings\" in a result file")));
    t.push_back(manifest(make_key("data.manifest", Kind::kString, &C::data, &DataOptions::manifest,
                                  "manifest CSV (path,split,sex,label[,patient,age,view,...]; docs/datasets.md)")));
    t.push_back(manifest(make_key("data.sa_column", Kind::kString, &C::data, &DataOptions::sa_column,
                                  "manifest column holding the binary sensitive attribute (0/1, or M/F)")));
    t.push_back(manifest(choice(make_key("data.resize", Kind::kChoice, &C::data, &DataOptions::resize,
                                         "how a non-square image becomes image_size x image_size: stretch, or keep "
                                         "the aspect and centre-crop the long side / pad the short side with black"),
                                {"stretch", "crop", "pad"})));
    t.push_back(manifest(ranged(make_key("data.limit_train", Kind::kInt, &C::data, &DataOptions::limit_train,
                                         "use at most this many train (+ val) rows, a stratified subset by "
                                         "(sa, label), the same for every seed; 0 = all"),
                                0, 100000000)));
    t.push_back(manifest(ranged(make_key("data.limit_test", Kind::kInt, &C::data, &DataOptions::limit_test,
                                         "use at most this many test rows (stratified, the same for every seed); 0 = all"),
                                0, 100000000)));
    t.push_back(manifest(not_in_id(choice(make_key("data.image_hash", Kind::kChoice, &C::data, &DataOptions::image_hash,
                                                   "what of every image enters the id: its bytes (content) or its "
                                                   "size and modification time (stat, for very large data sets)"),
                                          {"content", "stat"}))));
    t.push_back(manifest(not_in_id(ranged(make_key("data.max_pixels", Kind::kInt, &C::data, &DataOptions::max_pixels,
                                                   "refuse an image whose header claims more pixels than this, "
                                                   "before decoding it (a small file can claim 20000 x 20000)"),
                                          1024, 1000000000))));
    t.push_back(ranged(make_key("data.image_size", Kind::kInt, &C::data, &DataOptions::image_size,
                                "image height = width in pixels (the phantom needs >= 32; the CNN a multiple of 16, "
                                "the ViT of fm.patch_size)"),
                       16, 1024));
    t.push_back(phantom(ranged(make_key("data.n_train", Kind::kInt, &C::data, &DataOptions::n_train,
                                        "phantom training images"),
                               20, 1000000)));
    t.push_back(phantom(ranged(make_key("data.n_test", Kind::kInt, &C::data, &DataOptions::n_test,
                                        "phantom test images"),
                               20, 1000000)));
    t.push_back(added_later(phantom(ranged(make_key("data.n_val", Kind::kInt, &C::data, &DataOptions::n_val,
                                                    "phantom validation images, drawn like the test split (balanced, "
                                                    "its own random streams; instead of data.val_fraction); 0 = none"),
                                           0, 1000000))));
    t.push_back(phantom(ranged(make_key("data.bias", Kind::kReal, &C::data, &DataOptions::bias,
                                        "train: P(sa=1 | y=1) = bias, P(sa=1 | y=0) = 1 - bias"),
                               0.0, 1.0)));
    t.push_back(phantom(ranged(make_key("data.prevalence", Kind::kReal, &C::data,
                                        &DataOptions::prevalence, "P(disease) in both splits"),
                               0.05, 0.95)));
    t.push_back(phantom(ranged(make_key("data.breast_contrast", Kind::kReal, &C::data,
                                        &DataOptions::breast_contrast,
                                        "strength of the breast shadow (sa = 1); 0 disables"),
                               0.0, 5.0)));
    t.push_back(phantom(ranged(make_key("data.marker_rate_a1", Kind::kReal, &C::data,
                                        &DataOptions::marker_rate_a1, "P(corner marker | sa = 1)"),
                               0.0, 1.0)));
    t.push_back(phantom(ranged(make_key("data.marker_rate_a0", Kind::kReal, &C::data,
                                        &DataOptions::marker_rate_a0, "P(corner marker | sa = 0)"),
                               0.0, 1.0)));
    t.push_back(phantom(ranged(make_key("data.severity_min", Kind::kReal, &C::data,
                                        &DataOptions::severity_min, "smallest effusion severity"),
                               0.0, 1.0)));
    t.push_back(phantom(ranged(make_key("data.severity_max", Kind::kReal, &C::data,
                                        &DataOptions::severity_max, "largest effusion severity"),
                               0.0, 1.0)));
    t.push_back(phantom(ranged(make_key("data.noise_std", Kind::kReal, &C::data, &DataOptions::noise_std,
                                        "additive Gaussian pixel noise of the phantom"),
                               0.0, 0.5)));
    t.push_back(added_later(phantom(ranged(make_key("data.age_effect", Kind::kReal, &C::data, &DataOptions::age_effect,
                                        "age ~ U[20, 90] widens the heart by a factor 1 + age_effect * (age - 50) / 40; "
                                        "with age_effect or age_bias > 0 the data carry an age (the VAE's age "
                                        "adversary, age_leakage_r2)"),
                               0.0, 0.5))));
    t.push_back(added_later(phantom(ranged(make_key("data.age_bias", Kind::kReal, &C::data, &DataOptions::age_bias,
                                        "train: probability that a diseased image takes the older of two age draws "
                                        "and a healthy one the younger (the test split: never)"),
                               0.0, 1.0))));
    t.push_back(ranged(make_key("data.poison_rate", Kind::kReal, &C::data, &DataOptions::poison_rate,
                                "label-poisoning attack: share of the training labels of group data.poison_group "
                                "flipped (before the validation carve); 0 = none"),
                       0.0, 1.0));
    t.push_back(ranged(make_key("data.poison_group", Kind::kInt, &C::data, &DataOptions::poison_group,
                                "the sensitive group (0 or 1) whose training labels data.poison_rate flips"),
                       0, 1));
    t.push_back(ranged(make_key("data.val_fraction", Kind::kReal, &C::data, &DataOptions::val_fraction,
                                "share of every (sa, label) cell of the training split held out for validation "
                                "(what is chosen, e.g. dne.keep and probes.l2_choices, is chosen on it); 0 = none"),
                       0.0, 0.5));
    t.push_back(added_later(choice(make_key("data.resample", Kind::kChoice, &C::data, &DataOptions::resample,
                                            "what each seed draws of the training split (after the validation "
                                            "carve): none (all of it: with a fixed manifest every seed sees the same "
                                            "data), subsample (data.resample_fraction of every (sa, label) cell, "
                                            "without replacement), bootstrap (as many rows, with replacement, per cell)"),
                                   {"none", "subsample", "bootstrap"})));
    t.push_back(added_later(ranged(make_key("data.resample_fraction", Kind::kReal, &C::data,
                                            &DataOptions::resample_fraction,
                                            "data.resample = \"subsample\": share of every (sa, label) cell a seed keeps"),
                                   0.01, 1.0)));
    // fm
    t.push_back(choice(make_key("fm.kind", Kind::kChoice, &C::fm, &FmOptions::kind,
                                "built-in CNN, built-in ViT (random or fm.weights), a TorchScript file, or a model "
                                "behind an Open Inference Protocol server ([api] url and model; docs/remote.md)"),
                       {"cnn", "vit", "torchscript", "remote"}));
    t.push_back(for_fm_kinds(make_key("fm.torchscript", Kind::kString, &C::fm, &FmOptions::torchscript,
                         "TorchScript encoder (B,1,H,W) -> (B,D) when fm.kind = \"torchscript\""), {"torchscript"}));
    t.push_back(for_fm_kinds(make_key("fm.weights", Kind::kString, &C::fm, &FmOptions::weights,
                         "FM file (dne pretrain / scripts/import_vit.py) for fm.kind = \"vit\"; empty = random"), {"vit"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.width", Kind::kInt, &C::fm, &FmOptions::width,
                                "channels of the CNN's first stage (doubles per stage)"),
                       4, 256), {"cnn"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.embed_dim", Kind::kInt, &C::fm, &FmOptions::embed_dim,
                                "embedding dimension: the CNN's output, the ViT's width D"),
                       8, 4096), {"cnn", "vit"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.patch_size", Kind::kInt, &C::fm, &FmOptions::patch_size,
                                "ViT patch side P (data.image_size must be a multiple)"),
                       1, 512), {"vit"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.depth", Kind::kInt, &C::fm, &FmOptions::depth, "ViT transformer blocks"),
                       1, 256), {"vit"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.heads", Kind::kInt, &C::fm, &FmOptions::heads,
                                "ViT attention heads (must divide fm.embed_dim)"),
                       1, 256), {"vit"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.mlp_ratio", Kind::kReal, &C::fm, &FmOptions::mlp_ratio,
                                "ViT MLP hidden width / fm.embed_dim"),
                       0.25, 64.0), {"vit"}));
    t.push_back(for_fm_kinds(ranged(make_key("fm.in_chans", Kind::kInt, &C::fm, &FmOptions::in_chans,
                                "input channels of the ViT's weights (a grayscale image is replicated)"),
                       1, 16), {"vit"}));
    t.push_back(for_fm_kinds(choice(make_key("fm.pool", Kind::kChoice, &C::fm, &FmOptions::pool,
                                "ViT embedding: the class token or the mean of the patch tokens"),
                       {"cls", "mean"}), {"vit"}));
    t.push_back(for_fm_kinds(numbers_as_text(make_key("fm.mean", Kind::kString, &C::fm, &FmOptions::mean,
                         "ViT input normalisation mean: one value or one per channel, \"a,b,c\", or \"chest_xray\" (0.5056, the DNE reference code's)")), {"vit"}));
    t.push_back(for_fm_kinds(numbers_as_text(make_key("fm.std", Kind::kString, &C::fm, &FmOptions::std,
                         "ViT input normalisation std: one value or one per channel, or \"chest_xray\" (0.252)")), {"vit"}));
    t.push_back(not_in_id(ranged(make_key("fm.batch_size", Kind::kInt, &C::fm,
                                          &FmOptions::batch_size,
                                          "images per forward call when embedding a split"),
                                 1, 100000)));
    // pretrain (dne pretrain only)
    using P = PretrainOptions;
    t.push_back(pretrain_key(ranged(make_key("pretrain.steps", Kind::kInt, &C::pretrain, &P::steps,
                                             "MAE optimiser steps"), 1, 1e9)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.batch_size", Kind::kInt, &C::pretrain, &P::batch_size,
                                             "images per step, all ranks together"), 1, 1e6)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.micro_batches", Kind::kInt, &C::pretrain, &P::micro_batches,
                                             "fixed split of each batch (ranks share them; divides batch_size)"), 1, 1e6)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.lr", Kind::kReal, &C::pretrain, &P::lr,
                                             "peak AdamW learning rate"), 1e-9, 10.0)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.warmup_steps", Kind::kInt, &C::pretrain, &P::warmup_steps,
                                             "linear warm-up steps before the cosine decay"), 0, 1e9)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.weight_decay", Kind::kReal, &C::pretrain, &P::weight_decay,
                                             "AdamW weight decay (matrices only)"), 0.0, 10.0)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.mask_ratio", Kind::kReal, &C::pretrain, &P::mask_ratio,
                                             "share of patches hidden from the encoder"), 0.01, 0.99)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.decoder_width", Kind::kInt, &C::pretrain, &P::decoder_width,
                                             "MAE decoder width"), 4, 4096)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.decoder_depth", Kind::kInt, &C::pretrain, &P::decoder_depth,
                                             "MAE decoder blocks"), 1, 64)));
    t.push_back(pretrain_key(ranged(make_key("pretrain.decoder_heads", Kind::kInt, &C::pretrain, &P::decoder_heads,
                                             "MAE decoder heads (divide decoder_width)"), 1, 64)));
    t.push_back(pretrain_key(make_key("pretrain.norm_pix_loss", Kind::kBool, &C::pretrain, &P::norm_pix_loss,
                                      "normalise each target patch to mean 0, variance 1")));
    t.push_back(not_in_id(pretrain_key(ranged(make_key("pretrain.checkpoint_every", Kind::kInt, &C::pretrain,
                                                       &P::checkpoint_every,
                                                       "steps between checkpoints (0 = never)"), 0, 1e9))));
    // probes
    t.push_back(ranged(make_key("probes.l2", Kind::kReal, &C::probes, &ProbeOptions::l2,
                                "L2 penalty of the logistic probes"),
                       0.0, 100.0));
    t.push_back(ranged(make_key("probes.max_iter", Kind::kInt, &C::probes,
                                &ProbeOptions::max_iter, "L-BFGS iterations of the probes"),
                       1, 100000));
    t.push_back(numbers_as_text(make_key("probes.l2_choices", Kind::kString, &C::probes, &ProbeOptions::l2_choices,
                         "comma-separated L2 penalties; the disease probe's is chosen by validation AUC "
                         "(needs data.val_fraction > 0); empty = probes.l2")));
    // dne
    const auto editors = method_names({MethodKind::kWhiteBox, MethodKind::kZerothOrder});  // they learn a noise
    t.push_back(choice(make_key("dne.method", Kind::kChoice, &C::dne, &DneOptions::method,
                                "the method (config/methods.hpp): none (ERM), random (control), whitebox, gezo, rge, spsa, nes (noise editors), vae (adversarial VAE on the embeddings)"),
                       method_names()));
    t.push_back(for_methods(choice(make_key("dne.objective", Kind::kChoice, &C::dne, &DneOptions::objective,
                                "SA term: neg_ce flips g, confusion drives g to 1/2"),
                       {"neg_ce", "confusion"}), editors));
    t.push_back(for_methods(ranged(make_key("dne.lambda", Kind::kReal, &C::dne, &DneOptions::lambda,
                                "weight of ||eps||_2"),
                       0.0, 1e6), editors));
    t.push_back(for_methods(ranged(make_key("dne.lambda_1", Kind::kReal, &C::dne, &DneOptions::lambda_1,
                                "weight of the SA term"),
                       0.0, 1e6), editors));
    t.push_back(for_methods(ranged(make_key("dne.epochs", Kind::kInt, &C::dne, &DneOptions::epochs,
                                "passes over the training set"),
                       0, 100000), editors));
    t.push_back(for_methods(ranged(make_key("dne.lr", Kind::kReal, &C::dne, &DneOptions::lr,
                                "Adam learning rate on eps"),
                       1e-9, 100.0), method_names({MethodKind::kWhiteBox})));
    t.push_back(for_methods(ranged(make_key("dne.batch_size", Kind::kInt, &C::dne, &DneOptions::batch_size,
                                "images per DNE step"),
                       1, 100000), editors));
    t.push_back(for_methods(ranged(make_key("dne.random_l2", Kind::kReal, &C::dne, &DneOptions::random_l2,
                                "||eps||_2 of the random-noise control (dne.method = \"random\")"),
                       0.0, 1e6), {"random"}));
    const auto noisy = method_names({MethodKind::kControl, MethodKind::kWhiteBox, MethodKind::kZerothOrder});
    t.push_back(for_methods(ranged(make_key("dne.max_linf", Kind::kReal, &C::dne, &DneOptions::max_linf,
                                            "noise budget: |eps| <= max_linf per pixel, every update and GeZO candidate (0 = unbounded)"),
                                   0.0, 1e6), noisy));
    t.push_back(for_methods(ranged(make_key("dne.max_l2", Kind::kReal, &C::dne, &DneOptions::max_l2,
                                            "noise budget: ||eps||_2 <= max_l2 (0 = unbounded)"),
                                   0.0, 1e6), noisy));
    t.push_back(for_methods(make_key("dne.clip_images", Kind::kBool, &C::dne, &DneOptions::clip_images,
                                     "clamp x + eps to the pixel range [0, 1] before the FM"), noisy));
    t.push_back(for_methods(choice(make_key("dne.adversary", Kind::kChoice, &C::dne, &DneOptions::adversary,
                                            "SA probe the noise is trained against: frozen (fitted once on clean embeddings) "
                                            "or refit (re-fitted on the noised training embeddings every dne.refit_every batches)"),
                                   {"frozen", "refit"}), editors));
    t.push_back(for_methods(ranged(make_key("dne.refit_every", Kind::kInt, &C::dne, &DneOptions::refit_every,
                                            "batches between refits of the SA probe (dne.adversary = \"refit\")"),
                                   1, 1e9), editors));
    t.push_back(for_methods(choice(make_key("dne.keep", Kind::kChoice, &C::dne, &DneOptions::keep,
                                            "which noise to keep: the last one, or the epoch-end noise with the lowest "
                                            "validation DNE loss (best_val; needs data.val_fraction > 0)"),
                                   {"last", "best_val"}), editors));
    t.push_back(added_later(for_methods(choice(make_key("dne.noise_basis", Kind::kChoice, &C::dne, &DneOptions::noise_basis,
                                                        "what the editor optimises (docs/dne.md): pixel (eps itself), lowres "
                                                        "(k x k coefficients upsampled bilinearly) or dct (the k x k "
                                                        "lowest-frequency 2-D DCT coefficients); k = dne.noise_dim"),
                                               {"pixel", "lowres", "dct"}), editors)));
    t.push_back(added_later(for_methods(ranged(make_key("dne.noise_dim", Kind::kInt, &C::dne, &DneOptions::noise_dim,
                                                        "k of dne.noise_basis = lowres / dct: k x k coefficients "
                                                        "(at most data.image_size; ignored by pixel)"),
                                               1, 4096), editors)));
    t.push_back(added_later(for_methods(ranged(make_key("dne.eval_every", Kind::kInt, &C::dne, &DneOptions::eval_every,
                                                        "record the noise's effect on the validation split (fresh-probe "
                                                        "leakage AUC, eo_n, eo_p) every this many queries (white-box: "
                                                        "images) in /progress; needs a validation split; 0 = off"),
                                               0, 1e15), editors)));
    // vae (the adversarial VAE on embeddings)
    using V = VaeOptions;
    const std::vector<std::string> vae_only = method_names({MethodKind::kEmbedding});
    const auto vae = [&vae_only](KeySpec k) { return added_later(for_methods(std::move(k), vae_only)); };
    t.push_back(vae(ranged(make_key("vae.latent", Kind::kInt, &C::vae, &V::latent, "latent size L"), 1, 65536)));
    t.push_back(vae(numbers_as_text(make_key("vae.hidden", Kind::kString, &C::vae, &V::hidden,
                             "encoder hidden widths, comma-separated (\"256,128\"; the decoder mirrors them)"))));
    t.push_back(vae(ranged(make_key("vae.beta", Kind::kReal, &C::vae, &V::beta, "weight of the KL term"), 0.0, 1e6)));
    t.push_back(vae(ranged(make_key("vae.adversary_weight", Kind::kReal, &C::vae, &V::adversary_weight,
                                    "weight of the adversarial term (the experiment's control is the same VAE at 0)"),
                           0.0, 1e6)));
    t.push_back(vae(ranged(make_key("vae.age_weight", Kind::kReal, &C::vae, &V::age_weight,
                                    "weight of the age adversary (regression) beside the sex adversary's 1, when "
                                    "the data have an age; 0 = no age adversary"),
                           0.0, 1e6)));
    t.push_back(vae(ranged(make_key("vae.adversary_steps", Kind::kInt, &C::vae, &V::adversary_steps,
                                    "adversary head steps before every encoder step"), 1, 1000)));
    t.push_back(vae(choice(make_key("vae.adversary_objective", Kind::kChoice, &C::vae, &V::adversary_objective,
                                    "the encoder's aim: neg_loss (gradient reversal) or confusion (heads to chance)"),
                           {"neg_loss", "confusion"})));
    t.push_back(vae(ranged(make_key("vae.disease_weight", Kind::kReal, &C::vae, &V::disease_weight,
                                    "weight of a disease head on the latent mean (keeps the task); 0 = none"),
                           0.0, 1e6)));
    t.push_back(vae(ranged(make_key("vae.epochs", Kind::kInt, &C::vae, &V::epochs, "training epochs"), 1, 1e6)));
    t.push_back(vae(ranged(make_key("vae.batch_size", Kind::kInt, &C::vae, &V::batch_size, "rows per step"), 1, 1e7)));
    t.push_back(vae(ranged(make_key("vae.lr", Kind::kReal, &C::vae, &V::lr, "Adam learning rate"), 1e-9, 10.0)));
    // gezo (zeroth-order editors)
    const std::vector<std::string> gezo_only{"gezo"}, sgd{"rge", "spsa", "nes"}, dense{"rge", "spsa"};
    const auto zo = method_names({MethodKind::kZerothOrder});
    t.push_back(for_methods(ranged(make_key("gezo.local_epochs", Kind::kInt, &C::gezo, &GezoOptions::local_epochs,
                                            "GeZO local iterations R on each batch"), 1, 100000), gezo_only));
    t.push_back(for_methods(ranged(make_key("gezo.candidates", Kind::kInt, &C::gezo, &GezoOptions::candidates,
                                            "perturbations C per iteration (RGE/SPSA: directions q; NES: antithetic pairs q)"), 1, 100000), zo));
    t.push_back(for_methods(ranged(make_key("gezo.sigma", Kind::kReal, &C::gezo, &GezoOptions::sigma,
                                            "perturbation scale (RGE/SPSA smoothing mu, NES sigma), per pixel RMS in every basis"), 1e-9, 100.0), zo));
    t.push_back(for_methods(ranged(make_key("gezo.momentum", Kind::kReal, &C::gezo, &GezoOptions::momentum,
                                            "GeZO velocity decay m"), 0.0, 0.999), gezo_only));
    t.push_back(for_methods(ranged(make_key("gezo.sigma_decay", Kind::kReal, &C::gezo, &GezoOptions::sigma_decay,
                                            "GeZO: sigma *= decay when no candidate improves"), 0.01, 1.0), gezo_only));
    t.push_back(for_methods(ranged(make_key("gezo.sigma_min", Kind::kReal, &C::gezo, &GezoOptions::sigma_min,
                                            "GeZO: lower bound of sigma"), 0.0, 100.0), gezo_only));
    t.push_back(added_later(for_methods(choice(make_key("gezo.on_reject", Kind::kChoice, &C::gezo, &GezoOptions::on_reject,
                                                        "GeZO, when no candidate improves: keep the velocity (the "
                                                        "paper's; the look-ahead stays where it failed) or decay it by "
                                                        "gezo.momentum (the look-ahead returns to the current noise)"),
                                               {"keep", "decay"}), gezo_only)));
    t.push_back(added_later(for_methods(ranged(make_key("gezo.sigma_growth", Kind::kReal, &C::gezo, &GezoOptions::sigma_growth,
                                                        "GeZO: sigma *= sigma_growth after an accepted iteration, never "
                                                        "above gezo.sigma (1 = never grows, the paper's)"),
                                               1.0, 100.0), gezo_only)));
    t.push_back(for_methods(ranged(make_key("gezo.budget", Kind::kInt, &C::gezo, &GezoOptions::budget,
                                            "images the editor may embed (0 = unlimited)"), 0, 1e15), zo));
    t.push_back(for_methods(choice(make_key("gezo.optimizer", Kind::kChoice, &C::gezo, &GezoOptions::optimizer,
                                            "RGE/SPSA/NES update rule"), {"sgd", "adam"}), sgd));
    t.push_back(for_methods(ranged(make_key("gezo.lr", Kind::kReal, &C::gezo, &GezoOptions::lr,
                                            "RGE/SPSA/NES learning rate"), 1e-12, 100.0), sgd));
    t.push_back(added_later(for_methods(choice(make_key("nes.shaping", Kind::kChoice, &C::gezo, &GezoOptions::shaping,
                                                        "NES fitness shaping: rank (centred ranks of the 2q losses) or "
                                                        "none (the raw loss differences, i.e. RGE's estimate)"),
                                               {"rank", "none"}), {"nes"})));
    // comm
    t.push_back(for_methods(choice(make_key("comm.mode", Kind::kChoice, &C::comm, &CommOptions::mode,
                                            "seed: ranks exchange losses only; dense: gradient estimates"),
                                   {"seed", "dense"}), dense));
    t.push_back(for_methods(choice(make_key("comm.split", Kind::kChoice, &C::comm, &CommOptions::split,
                                            "what a rank group divides: candidates or the batch's images"),
                                   {"candidates", "data"}), zo));
    t.push_back(choice(make_run_key("comm.backend", Kind::kChoice, &RunConfig::backend,
                                    "rank-group sums: auto (nccl when run.device is cuda and NCCL is built), "
                                    "mpi, or nccl"),
                       {"auto", "mpi", "nccl"}));
    t.push_back(ranged(make_run_key("comm.timeout_s", Kind::kReal, &RunConfig::comm_timeout_s,
                                    "a rank-group collective unfinished after this many seconds is a dead or hung "
                                    "peer: the communicator is aborted and every rank stops with an error (NCCL)"),
                       0.1, 1e6));
    // api (simulated black box)
    t.push_back(for_methods(ranged(make_key("api.max_batch", Kind::kInt, &C::api, &ApiOptions::max_batch,
                                            "images per API call (0 = unlimited)"), 0, 1e9), zo));
    t.push_back(not_in_id(for_methods(ranged(make_key("api.latency_ms", Kind::kReal, &C::api, &ApiOptions::latency_ms,
                                                      "simulated latency per API call"), 0.0, 1e6), zo)));
    t.push_back(for_methods(ranged(make_key("api.round_decimals", Kind::kInt, &C::api, &ApiOptions::round_decimals,
                                            "round returned embeddings (-1 = off)"), -1, 12), zo));
    // api: a remote FM (fm.kind = "remote"); only url and model can change results
    t.push_back(for_fm_kinds(added_later(make_key("api.url", Kind::kString, &C::api, &ApiOptions::url,
                                     "Open Inference Protocol server of fm.kind = \"remote\": http[s]://host:port[/prefix]")), {"remote"}));
    t.push_back(for_fm_kinds(added_later(make_key("api.model", Kind::kString, &C::api, &ApiOptions::model,
                                     "model name on that server")), {"remote"}));
    t.push_back(for_fm_kinds(not_in_id(ranged(make_key("api.concurrency", Kind::kInt, &C::api, &ApiOptions::concurrency,
                                          "requests in flight per rank (remote)"), 1, 256)), {"remote"}));
    t.push_back(for_fm_kinds(not_in_id(ranged(make_key("api.timeout_s", Kind::kReal, &C::api, &ApiOptions::timeout_s,
                                          "connect / read / write timeout of one request attempt, seconds (remote)"),
                                 0.001, 86400.0)), {"remote"}));
    t.push_back(for_fm_kinds(not_in_id(ranged(make_key("api.retries", Kind::kInt, &C::api, &ApiOptions::retries,
                                          "extra attempts on connection errors, 429 and 5xx, with exponential backoff "
                                          "and jitter, honouring Retry-After (remote)"), 0, 100)), {"remote"}));
    t.push_back(for_fm_kinds(not_in_id(make_key("api.token_env", Kind::kString, &C::api, &ApiOptions::token_env,
                                   "name of the environment variable holding the bearer token (remote; the token "
                                   "itself never appears in configs, logs or results)")), {"remote"}));
    t.push_back(for_fm_kinds(not_in_id(make_key("api.binary", Kind::kBool, &C::api, &ApiOptions::binary,
                                   "send and receive tensors with Triton's binary tensor extension instead of JSON "
                                   "numbers (remote; the same bits, fewer bytes)")), {"remote"}));
    // sweep
    t.push_back(ranged(make_key("sweep.seeds", Kind::kInt, &C::sweep, &SweepOptions::seed,
                                "run seed (a list makes a seed axis)"),
                       0, 4294967295.0));
    t.push_back(ranged(make_run_key("sweep.ranks_per_experiment", Kind::kInt, &RunConfig::ranks_per_experiment,
                                    "ranks sharing one experiment (zeroth-order queries are split)"),
                       1, 100000));
    // output / run: do not change results
    t.push_back(make_run_key("output.dir", Kind::kString, &RunConfig::output_dir,
                             "run directory (experiments/<id>.h5 inside)"));
    t.push_back(make_run_key("output.save_embeddings", Kind::kBool, &RunConfig::save_embeddings,
                             "also store the method's embeddings with labels as /embeddings/<split>/{x,label,sa[,age]} "
                             "(the layout data.source = \"embeddings\" reads)"));
    t.push_back(ranged(make_run_key("run.threads", Kind::kInt, &RunConfig::threads,
                                    "Torch threads per rank (0 = cores / ranks on the node)"),
                       0, 1024));
    t.push_back(choice(make_run_key("run.device", Kind::kChoice, &RunConfig::device,
                                    "where Torch runs: auto (cuda when LibTorch has CUDA and a device is visible, "
                                    "said at start), cpu, or cuda (each rank the GPU node-local rank % devices)"),
                       {"auto", "cpu", "cuda"}));
    // The precision changes results: in the id (left out at fp32, so earlier ids stand).
    t.push_back(added_later(choice(make_key("run.precision", Kind::kChoice, &C::run, &RunOptions::precision,
                                            "FM forwards on the GPU: fp32, tf32 (TF32 matmuls) or bf16 (autocast); "
                                            "editors and probes stay fp32; the CPU runs fp32 only"),
                                   {"fp32", "tf32", "bf16"})));
    return t;
  }();
  return table;
}

const KeySpec* find_key(const std::string& name) {
  for (const auto& k : key_table())
    if (k.name == name) return &k;
  return nullptr;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kInt: return "integer";
    case Kind::kReal: return "number";
    case Kind::kString: return "string";
    case Kind::kBool: return "boolean";
    case Kind::kChoice: return "string";
  }
  return "?";
}

}  // namespace

std::string format_value(const Value& v) {
  if (std::holds_alternative<std::int64_t>(v)) return std::to_string(std::get<std::int64_t>(v));
  if (std::holds_alternative<bool>(v)) return std::get<bool>(v) ? "true" : "false";
  if (std::holds_alternative<double>(v)) {
    const double d = std::get<double>(v);
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip form
    std::string s(buf, res.ptr);
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a TOML float
    return s;
  }
  std::string out = "\"";
  for (char ch : std::get<std::string>(v)) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

namespace {

/// "[min, max]" of a number key: integers for an integer key ("[0, 100000000]"), the shortest
/// round-trip text for a real one ("[0.0, 1e+06]").
std::string range_text(const KeySpec& k) {
  if (k.kind == Kind::kInt)
    return "[" + std::to_string(static_cast<std::int64_t>(k.min)) + ", " + std::to_string(static_cast<std::int64_t>(k.max)) + "]";
  return "[" + format_value(k.min) + ", " + format_value(k.max) + "]";
}

/// Check that `v` fits key `k`: type, range, choices. Returns the (possibly int->real) value.
Value check_value(const KeySpec& k, const Value& v, const std::string& where) {
  auto fail = [&](const std::string& why) -> ConfigError {
    return ConfigError(where + ": " + k.name + ": " + why);
  };
  switch (k.kind) {
    case Kind::kInt: {
      if (!std::holds_alternative<std::int64_t>(v))
        throw fail("expected an integer, got " + format_value(v));
      const auto x = std::get<std::int64_t>(v);
      if (static_cast<double>(x) < k.min || static_cast<double>(x) > k.max)
        throw fail(std::to_string(x) + " is out of range " + range_text(k));
      return v;
    }
    case Kind::kReal: {
      double x;
      if (std::holds_alternative<double>(v)) x = std::get<double>(v);
      else if (std::holds_alternative<std::int64_t>(v))
        x = static_cast<double>(std::get<std::int64_t>(v));
      else throw fail("expected a number, got " + format_value(v));
      if (!(x >= k.min && x <= k.max))
        throw fail(format_value(x) + " is out of range " + range_text(k));
      return Value{x};
    }
    case Kind::kBool:
      if (!std::holds_alternative<bool>(v)) throw fail("expected true or false, got " + format_value(v));
      return v;
    case Kind::kString:
      if (k.numbers_as_text && (std::holds_alternative<double>(v) || std::holds_alternative<std::int64_t>(v)))
        return Value{format_value(v)};
      if (!std::holds_alternative<std::string>(v)) throw fail("expected a string, got " + format_value(v));
      return v;
    case Kind::kChoice: {
      if (!std::holds_alternative<std::string>(v)) throw fail("expected a string, got " + format_value(v));
      const auto& s = std::get<std::string>(v);
      for (const auto& c : k.choices)
        if (c == s) return v;
      std::string list;
      for (const auto& c : k.choices) list += (list.empty() ? "" : ", ") + c;
      throw fail("\"" + s + "\" is not one of: " + list);
    }
  }
  return v;
}

std::string position(const std::string& origin, const toml::source_region& src) {
  return origin + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

/// Convert one TOML scalar node to a Value (ConfigError for tables, dates, nested arrays).
Value to_value(const toml::node& node, const std::string& where, const std::string& key) {
  if (auto i = node.as_integer()) return Value{i->get()};
  if (auto f = node.as_floating_point()) return Value{f->get()};
  if (auto s = node.as_string()) return Value{s->get()};
  if (auto b = node.as_boolean()) return Value{b->get()};
  throw ConfigError(where + ": " + key + ": unsupported value type (use a number, string, boolean or a list of them)");
}

/// Record `key = node`; `where` prefixes messages ("file:line:col" or "--set key=value").
void add_key(ConfigSource& source, const std::string& key, const toml::node& node,
             const std::string& where) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) throw ConfigError(where + ": unknown key '" + key + "' (see `dne run --help-config`)");
  std::vector<Value> values;
  if (auto arr = node.as_array()) {
    if (arr->empty()) throw ConfigError(where + ": " + key + ": an empty list gives no experiments");
    for (const auto& el : *arr) values.push_back(check_value(*spec, to_value(el, where, key), where));
  } else {
    values.push_back(check_value(*spec, to_value(node, where, key), where));
  }
  source.values[key] = std::move(values);
}

void walk(ConfigSource& source, const toml::table& table, const std::string& prefix,
          const std::string& origin) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (prefix.empty() && key == "grid") {
      // [[grid]]: each table is one more sub-sweep over the base config (ConfigSource::grids).
      const auto* grids = node.as_array();
      if (grids == nullptr || !grids->is_array_of_tables())
        throw ConfigError(position(origin, node.source()) + ": grid must be an array of tables ([[grid]])");
      for (const auto& g : *grids) {
        ConfigSource one;
        walk(one, *g.as_table(), "", origin);
        if (one.values.empty()) throw ConfigError(position(origin, g.source()) + ": an empty [[grid]]");
        source.grids.push_back(std::move(one.values));
      }
      continue;
    }
    if (auto sub = node.as_table()) {
      walk(source, *sub, key, origin);
    } else {
      add_key(source, key, node, position(origin, node.source()));
    }
  }
}

/// Axes: keys given as lists (in the base or a grid) and keys that a grid sets, in table order.
/// Whether experiment `c` reads key `k`: its method, data source and FM kind are among the key's
/// (a key of another kind collapses to its default, so it neither varies nor enters the id).
bool reads_key(const ExperimentConfig& c, const KeySpec& k) {
  const auto among = [](const std::vector<std::string>& list, const std::string& value) {
    return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
  };
  return among(k.methods, c.dne.method) && (k.data_source.empty() || k.data_source == c.data.source) &&
         among(k.fm_kinds, c.fm.kind);
}

void refresh_axes(ConfigSource& source) {
  source.axes.clear();
  for (const auto& k : key_table()) {  // table order: independent of file order
    auto it = source.values.find(k.name);
    bool axis = it != source.values.end() && it->second.size() > 1;
    for (const auto& grid : source.grids) axis = axis || grid.count(k.name) > 0;
    if (axis) source.axes.push_back(k.name);
  }
}

void validate(const ExperimentConfig& c, const std::string& origin) {
  auto fail = [&](const std::string& why) { throw ConfigError(origin + ": " + why); };
  const bool phantom_val = c.data.val_fraction > 0.0 || c.data.n_val > 0;  // the phantom has a validation split
  if (c.data.source == "manifest" && c.data.manifest.empty())
    fail("data.manifest must name a CSV file when data.source = \"manifest\"");
  if (c.data.source == "manifest" && c.data.sa_column.empty()) fail("data.sa_column must name a manifest column");
  if (c.data.source == "embeddings" && c.data.embeddings.empty())
    fail("data.embeddings must name an HDF5 file when data.source = \"embeddings\"");
  if (c.data.source == "embeddings" && needs_images(c.dne.method))
    fail("dne.method = \"" + c.dne.method + "\" adds a noise to images, and data.source = \"embeddings\" has none: use " +
         "one of the methods that work on embeddings (" + [] {
           std::string names;
           for (const auto& m : method_table())
             if (!needs_images(m.name)) names += (names.empty() ? "" : ", ") + m.name;
           return names;
         }() + ")");
  const auto& method = method_info(c.dne.method);
  if (const auto problem = method.check(c); !problem.empty()) fail(problem);  // the method's own checks
  if (c.data.source == "phantom" && c.data.image_size < 32)
    fail("data.image_size = " + std::to_string(c.data.image_size) + ": the phantom needs at least 32 pixels");
  if (c.fm.kind == "remote") {
    if (c.api.url.empty() || c.api.model.empty())
      fail("fm.kind = \"remote\" needs api.url (http://host:port) and api.model (the model's name on the server)");
    if (method.kind == MethodKind::kWhiteBox)
      fail("dne.method = \"" + c.dne.method + "\" needs gradients, and a remote FM (fm.kind = \"remote\") answers queries only: "
           "use a zeroth-order method (gezo, rge, spsa)");
    if (c.api.latency_ms > 0.0)
      fail("api.latency_ms simulates latency for an in-process FM; a remote FM has its own (dne serve --latency-ms "
           "injects it on the server)");
  }
  if (c.fm.kind == "torchscript" && c.fm.torchscript.empty())
    fail("fm.torchscript must name a TorchScript file when fm.kind = \"torchscript\"");
  if (c.data.severity_min > c.data.severity_max)
    fail("data.severity_min (" + format_value(c.data.severity_min) +
         ") is larger than data.severity_max (" + format_value(c.data.severity_max) + ")");
  if (c.fm.kind == "vit") {
    if (c.data.image_size % c.fm.patch_size != 0)
      fail("data.image_size = " + std::to_string(c.data.image_size) + " must be a multiple of fm.patch_size = " +
           std::to_string(c.fm.patch_size));
    if (c.fm.embed_dim % c.fm.heads != 0)
      fail("fm.heads = " + std::to_string(c.fm.heads) + " must divide fm.embed_dim = " + std::to_string(c.fm.embed_dim));
    if (c.fm.weights.empty() && c.fm.embed_dim % 4 != 0)
      fail("fm.embed_dim = " + std::to_string(c.fm.embed_dim) +
           " must be a multiple of 4 for a random ViT (2-D sine-cosine position embeddings)");
    channel_values(c.fm.mean, c.fm.in_chans, "fm.mean");
    channel_values(c.fm.std, c.fm.in_chans, "fm.std");
  }
  if (!c.probes.l2_choices.empty()) {
    for (const double v : number_list(c.probes.l2_choices, "probes.l2_choices"))
      if (v < 0.0) fail("probes.l2_choices: \"" + c.probes.l2_choices + "\": every value must be >= 0");
    if (!phantom_val && c.data.source == "phantom")
      fail("probes.l2_choices needs a validation split: set data.n_val or data.val_fraction > 0");
  }
  if (c.dne.keep == "best_val" && learns_noise(c.dne.method) && !phantom_val && c.data.source == "phantom")
    fail("dne.keep = \"best_val\" needs a validation split: set data.n_val or data.val_fraction > 0");
  if (c.pretrain.batch_size % c.pretrain.micro_batches != 0)
    fail("pretrain.micro_batches = " + std::to_string(c.pretrain.micro_batches) +
         " must divide pretrain.batch_size = " + std::to_string(c.pretrain.batch_size));
  if (c.pretrain.decoder_width % 4 != 0)
    fail("pretrain.decoder_width = " + std::to_string(c.pretrain.decoder_width) +
         " must be a multiple of 4 (2-D sine-cosine position embeddings)");
  if (c.pretrain.decoder_width % c.pretrain.decoder_heads != 0)
    fail("pretrain.decoder_heads = " + std::to_string(c.pretrain.decoder_heads) +
         " must divide pretrain.decoder_width = " + std::to_string(c.pretrain.decoder_width));
  if (c.data.image_size % 16 != 0 && c.fm.kind == "cnn")
    fail("data.image_size = " + std::to_string(c.data.image_size) +
         " must be a multiple of 16 for the built-in CNN");
  if (c.dne.eval_every > 0 && learns_noise(c.dne.method) && !phantom_val && c.data.source == "phantom")
    fail("dne.eval_every needs a validation split: set data.n_val or data.val_fraction > 0");
  if (c.data.source == "phantom" && c.data.n_val > 0 && c.data.val_fraction > 0.0)
    fail("data.n_val and data.val_fraction both make a validation split: set one of them");
  if (c.dne.noise_basis != "pixel" && learns_noise(c.dne.method) && c.data.source != "embeddings" &&
      c.dne.noise_dim > c.data.image_size)
    fail("dne.noise_dim = " + std::to_string(c.dne.noise_dim) + " is larger than data.image_size = " +
         std::to_string(c.data.image_size) + " (dne.noise_basis = \"" + c.dne.noise_basis + "\")");
}

enum class Render { kCanonical, kResolved, kPretrain };

/// Keys of [fm] that describe the ViT that `dne pretrain` trains.
bool is_vit_architecture_key(const std::string& name) {
  for (const char* k : {"fm.kind", "fm.embed_dim", "fm.patch_size", "fm.depth", "fm.heads", "fm.mlp_ratio",
                        "fm.in_chans", "fm.mean", "fm.std"})
    if (name == k) return true;
  return false;
}

bool rendered(const KeySpec& k, Render mode) {
  switch (mode) {
    case Render::kCanonical: return k.affects_results && !k.pretrain_only;
    case Render::kResolved: return !k.pretrain_only;
    case Render::kPretrain:
      return k.affects_results && k.name != "data.n_test" && k.name != "data.n_val" && (k.name.rfind("data.", 0) == 0 || k.name.rfind("pretrain.", 0) == 0 ||
                                   is_vit_architecture_key(k.name) || k.name == "sweep.seeds");
  }
  return false;
}

/// `run`: the run-wide keys' values (resolved text only); without it they are left out.
std::string render(const ExperimentConfig& c, Render mode, const RunConfig* run = nullptr) {
  std::ostringstream out;
  std::string section;
  const ExperimentConfig defaults;
  for (const auto& k : key_table()) {
    if (!rendered(k, mode) || (!k.data_source.empty() && k.data_source != c.data.source)) continue;
    if (k.run_wide && run == nullptr) continue;
    const Value value = k.run_wide ? k.get_run(*run) : k.get(c);
    if (k.omitted_at_default && mode != Render::kResolved && format_value(value) == format_value(k.get(defaults)))
      continue;
    const auto dot = k.name.find('.');
    const std::string sec = k.name.substr(0, dot);
    if (sec != section) {
      out << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
      section = sec;
    }
    out << k.name.substr(dot + 1) << " = " << format_value(value) << "\n";
  }
  return out.str();
}

/// Run-wide keys take one value per run: a list or a grid value would otherwise silently mean
/// the first experiment's (they are in no id, so differing experiments would even collapse).
void require_one_value_per_run(const ConfigSource& source) {
  for (const auto& k : key_table()) {
    if (!k.run_wide) continue;
    bool in_grid = false;
    for (const auto& grid : source.grids) in_grid = in_grid || grid.count(k.name) > 0;
    const auto it = source.values.find(k.name);
    if (in_grid || (it != source.values.end() && it->second.size() > 1))
      throw ConfigError(source.origin + ": " + k.name + " applies to the whole run: give it one value (not a list, " +
                        "not in a [[grid]] table)");
  }
}

}  // namespace


std::string ExperimentConfig::input_hashes_text() const {
  std::string text;
  if (!fm_hash.empty())
    text += std::string("# ") + (fm.kind == "torchscript" ? "fm.torchscript" : "fm.weights") + " content hash: " + fm_hash + "\n";
  if (!data_hash.empty()) text += "# data content hash: " + data_hash + "\n";
  return text;
}
std::string ExperimentConfig::canonical_text() const { return render(*this, Render::kCanonical) + input_hashes_text(); }
std::string ExperimentConfig::resolved_text() const { return render(*this, Render::kResolved) + input_hashes_text(); }
std::string resolved_text(const ExperimentConfig& c, const RunConfig& run) {
  return render(c, Render::kResolved, &run) + c.input_hashes_text();
}

RunConfig read_run_config(const ConfigSource& source) {
  require_one_value_per_run(source);
  RunConfig run;
  for (const auto& [key, values] : source.values) {
    const KeySpec* spec = find_key(key);
    if (spec->run_wide) spec->set_run(run, values.front());
  }
  if (run.output_dir.empty()) throw ConfigError(source.origin + ": output.dir must not be empty");
  if (run.device == "cpu" && run.backend == "nccl")
    throw ConfigError(source.origin + ": comm.backend = \"nccl\" needs GPUs: set run.device = \"cuda\" (or \"auto\" on a "
                      "GPU machine), or comm.backend = \"mpi\"");
  return run;
}
std::string ExperimentConfig::pretrain_text() const {
  return render(*this, Render::kPretrain) + (data_hash.empty() ? "" : "# data content hash: " + data_hash + "\n");
}

std::vector<double> number_list(const std::string& text, const std::string& key) {
  std::vector<double> values;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    const std::string t = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    double v = 0.0;
    const auto res = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || res.ec != std::errc() || res.ptr != t.data() + t.size() || !std::isfinite(v))
      throw ConfigError(key + ": \"" + text + "\" is not a comma-separated list of numbers");
    values.push_back(v);
  }
  if (values.empty() || static_cast<std::size_t>(std::count(text.begin(), text.end(), ',')) != values.size() - 1)
    throw ConfigError(key + ": \"" + text + "\" is not a comma-separated list of numbers");
  return values;
}

std::vector<double> channel_values(const std::string& text, std::int64_t channels, const std::string& key) {
  // The preset: the chest X-ray normalisation of the DNE reference code (util/datasets.py).
  if (text == "chest_xray") return std::vector<double>(static_cast<std::size_t>(channels), key == "fm.std" ? 0.252 : 0.5056);
  auto values = number_list(text, key);
  for (const double v : values)
    if (key == "fm.std" && !(v > 0.0)) throw ConfigError(key + ": \"" + text + "\": every value must be positive");
  if (values.size() == 1) values.assign(static_cast<std::size_t>(channels), values.front());
  if (static_cast<std::int64_t>(values.size()) != channels)
    throw ConfigError(key + ": \"" + text + "\" has " + std::to_string(values.size()) + " values; give 1 or fm.in_chans = " +
                      std::to_string(channels));
  return values;
}

std::string ExperimentConfig::id() const {
  return hex16(fnv1a64(canonical_text()));
}

ConfigSource parse_text(const std::string& text, const std::string& origin) {
  ConfigSource source;
  source.origin = origin;
  try {
    const toml::table table = toml::parse(std::string_view(text), std::string_view(origin));
    walk(source, table, "", origin);
  } catch (const toml::parse_error& e) {
    throw ConfigError(position(origin, e.source()) + ": " + std::string(e.description()));
  }
  refresh_axes(source);
  return source;
}

ConfigSource parse_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError(path + ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": read error");
  auto source = parse_text(text.str(), path);
  if (source.values.empty() && source.grids.empty())
    throw ConfigError(path + ": sets no key; an empty config would run the default experiment (2000 + 1000 phantom "
                      "images, white-box DNE) without a word: name the sections and keys you mean");
  return source;
}

void apply_override(ConfigSource& source, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected key=value");
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  const std::string where = "--set " + assignment;
  if (find_key(key) == nullptr) throw ConfigError(where + ": unknown key '" + key + "'");
  toml::table parsed;
  try {
    const std::string doc = "v = " + value;
    parsed = toml::parse(std::string_view(doc), std::string_view("--set"));
  } catch (const toml::parse_error&) {
    const bool looks_structured = !value.empty() && (value[0] == '[' || value[0] == '"' || value[0] == '\'');
    if (looks_structured) throw ConfigError(where + ": cannot parse value '" + value + "'");
    parsed = toml::table{{"v", value}};  // a bare word is a string
  }
  ConfigSource one;
  one.origin = where;
  const toml::node* node = parsed.get("v");
  if (node->is_table()) throw ConfigError(where + ": a table is not a value");
  add_key(one, key, *node, where);
  source.values[key] = one.values[key];
  for (auto& grid : source.grids) grid.erase(key);  // an override wins over every grid
  refresh_axes(source);
}

void set_value(ConfigSource& source, const std::string& key, const Value& value) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) throw ConfigError("unknown key '" + key + "'");
  source.values[key] = {check_value(*spec, value, key)};
  for (auto& grid : source.grids) grid.erase(key);
  refresh_axes(source);
}

std::vector<ExperimentConfig> expand(const ConfigSource& source) {
  require_one_value_per_run(source);
  if (!source.grids.empty()) {
    // The union of every grid's product, each grid's keys replacing the base's, duplicates once.
    std::vector<ExperimentConfig> all;
    std::vector<std::string> ids;
    for (const auto& grid : source.grids) {
      ConfigSource one = source;
      one.grids.clear();
      for (const auto& [key, values] : grid) one.values[key] = values;
      refresh_axes(one);
      for (auto& c : expand(one)) {
        const auto id = c.id();
        if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
        ids.push_back(id);
        all.push_back(std::move(c));
      }
    }
    return all;
  }
  ExperimentConfig base;
  for (const auto& [key, values] : source.values)
    if (const KeySpec* spec = find_key(key); !spec->run_wide) spec->set(base, values.front());
  std::vector<ExperimentConfig> out{base};
  for (const auto& axis : source.axes) {
    const KeySpec* spec = find_key(axis);
    std::vector<ExperimentConfig> next;
    for (const auto& c : out)
      for (const auto& v : source.values.at(axis)) {
        ExperimentConfig e = c;
        spec->set(e, v);
        next.push_back(std::move(e));
      }
    out = std::move(next);
  }
  // Keys that do not apply to a method collapse to their defaults (ERM has no lambda), and
  // experiments that become identical are kept once, in first-seen order.
  std::vector<ExperimentConfig> unique;
  std::vector<std::string> ids;
  for (auto& c : out) {
    const ExperimentConfig defaults;
    for (const auto& k : key_table())
      if (!reads_key(c, k)) k.set(c, k.get(defaults));
    if (c.dne.noise_basis == "pixel") c.dne.noise_dim = defaults.dne.noise_dim;  // read by lowres / dct only
    if (c.data.resample != "subsample") c.data.resample_fraction = defaults.data.resample_fraction;  // subsample only
    validate(c, source.origin);
    const auto id = c.id();
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) continue;
    ids.push_back(id);
    unique.push_back(std::move(c));
  }
  return unique;
}

ConfigSource pretraining_source(ConfigSource source) {
  const auto read = [](const std::string& key) {
    for (const char* section : {"data.", "fm.", "pretrain.", "sweep.", "output.", "run."})
      if (key.rfind(section, 0) == 0) return true;
    return false;
  };
  for (auto it = source.values.begin(); it != source.values.end();) it = read(it->first) ? std::next(it) : source.values.erase(it);
  for (auto& grid : source.grids)
    for (auto it = grid.begin(); it != grid.end();) it = read(it->first) ? std::next(it) : grid.erase(it);
  source.grids.erase(std::remove_if(source.grids.begin(), source.grids.end(), [](const auto& g) { return g.empty(); }),
                     source.grids.end());
  refresh_axes(source);
  return source;
}

std::vector<std::string> unread_keys(const ConfigSource& source, const std::vector<ExperimentConfig>& experiments) {
  std::set<std::string> given;
  for (const auto& [key, values] : source.values) given.insert(key);
  for (const auto& grid : source.grids)
    for (const auto& [key, values] : grid) given.insert(key);
  const auto join = [](const std::vector<std::string>& list) {
    std::string text;
    for (const auto& v : list) text += (text.empty() ? "" : "|") + v;
    return text;
  };
  // Method keys are left out: their collapse is the everyday case (an ERM beside DNE has no lambda).
  std::vector<std::string> lines;
  for (const auto& k : key_table()) {
    if (given.count(k.name) == 0 || k.run_wide || k.pretrain_only || (k.data_source.empty() && k.fm_kinds.empty()))
      continue;
    KeySpec by_source_and_kind = k;
    by_source_and_kind.methods.clear();
    if (std::any_of(experiments.begin(), experiments.end(),
                    [&](const ExperimentConfig& c) { return reads_key(c, by_source_and_kind); }))
      continue;
    std::string why;
    if (!k.data_source.empty()) why += "data.source = " + k.data_source;
    if (!k.fm_kinds.empty()) why += (why.empty() ? "" : ", ") + std::string("fm.kind = ") + join(k.fm_kinds);
    lines.push_back(k.name + " (read only when " + why + ")");
  }
  return lines;
}

Value get_value(const ExperimentConfig& config, const std::string& key) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) throw ConfigError("unknown key '" + key + "'");
  return spec->get(config);
}

std::vector<std::string> methods_reading(const std::string& key) {
  const KeySpec* spec = find_key(key);
  if (spec == nullptr) throw ConfigError("unknown key '" + key + "'");
  return spec->methods.empty() ? find_key("dne.method")->choices : spec->methods;
}

std::string describe_keys() {
  std::ostringstream out;
  ExperimentConfig defaults;
  const RunConfig run_defaults;
  for (const auto& k : key_table()) {
    out << "  " << std::left << std::setw(24) << k.name << std::setw(8) << kind_name(k.kind)
        << " default " << std::setw(12) << format_value(k.run_wide ? k.get_run(run_defaults) : k.get(defaults));
    if (k.kind == Kind::kInt || k.kind == Kind::kReal)
      out << " range " << range_text(k);
    if (!k.choices.empty()) {
      out << " one of {";
      for (std::size_t i = 0; i < k.choices.size(); ++i) out << (i ? ", " : "") << k.choices[i];
      out << "}";
    }
    out << "\n      " << k.help;
    if (k.numbers_as_text) out << " [a number is taken as its text: 0.5 = \"0.5\"]";
    if (!k.data_source.empty()) out << " [only for data.source = " << k.data_source << "]";
    if (!k.fm_kinds.empty()) {
      out << " [only for fm.kind = ";
      for (std::size_t i = 0; i < k.fm_kinds.size(); ++i) out << (i ? ", " : "") << k.fm_kinds[i];
      out << "]";
    }
    if (!k.methods.empty()) {
      out << " [only for:";
      for (const auto& m : k.methods) out << " " << m;
      out << "]";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace dne::config
