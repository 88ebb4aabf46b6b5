// The config key table: every key's name, type, default, range, help and field (see key_spec.hpp).
//
// The key table below is the single place where a config key is declared: its TOML name,
// type, default (from the option structs), allowed range or choices, help text, whether it
// changes results (and so the experiment id), and the field it fills.
#include "dne/config/key_spec.hpp"

#include <type_traits>
#include <utility>
#include <variant>

#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"

namespace dne::config::detail {
namespace {

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
/// The key was called `former` before: it keeps that name in the canonical text (the id) and
/// the old name is still read, with a deprecation note (KeySpec::former_name).
KeySpec renamed_from(KeySpec k, std::string former) {
  k.former_name = std::move(former);
  return k;
}
KeySpec pretrain_key(KeySpec k) {
  k.pretrain_only = true;
  return k;
}

using C = ExperimentConfig;  // the rows below name a field as &C::section, &Options::field

// data
void add_data_keys(std::vector<KeySpec>& t) {
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
}

// fm
void add_fm_keys(std::vector<KeySpec>& t) {
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
}

// pretrain (dne pretrain only)
void add_pretrain_keys(std::vector<KeySpec>& t) {
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
}

// probes
void add_probe_keys(std::vector<KeySpec>& t) {
  t.push_back(ranged(make_key("probes.l2", Kind::kReal, &C::probes, &ProbeOptions::l2,
                              "L2 penalty of the logistic probes"),
                     0.0, 100.0));
  t.push_back(ranged(make_key("probes.max_iter", Kind::kInt, &C::probes,
                              &ProbeOptions::max_iter, "L-BFGS iterations of the probes"),
                     1, 100000));
  t.push_back(numbers_as_text(make_key("probes.l2_choices", Kind::kString, &C::probes, &ProbeOptions::l2_choices,
                       "comma-separated L2 penalties; the disease probe's is chosen by validation AUC "
                       "(needs data.val_fraction > 0); empty = probes.l2")));
}

// dne
void add_dne_keys(std::vector<KeySpec>& t) {
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
}

// vae (the adversarial VAE on embeddings)
void add_vae_keys(std::vector<KeySpec>& t) {
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
}

// gezo (GeZO's own keys) and zo (the keys every zeroth-order editor reads: renamed from gezo.*,
// their canonical text keeps the gezo.* names, so ids are unchanged)
void add_gezo_keys(std::vector<KeySpec>& t) {
  const std::vector<std::string> gezo_only{"gezo"}, sgd{"rge", "spsa", "nes"};
  const auto zo = method_names({MethodKind::kZerothOrder});
  t.push_back(for_methods(ranged(make_key("gezo.local_epochs", Kind::kInt, &C::zo, &ZerothOrderOptions::local_epochs,
                                          "GeZO local iterations R on each batch"), 1, 100000), gezo_only));
  t.push_back(renamed_from(for_methods(ranged(make_key("zo.candidates", Kind::kInt, &C::zo, &ZerothOrderOptions::candidates,
                                          "perturbations C per iteration (RGE/SPSA: directions q; NES: antithetic pairs q)"), 1, 100000), zo), "gezo.candidates"));
  t.push_back(renamed_from(for_methods(ranged(make_key("zo.sigma", Kind::kReal, &C::zo, &ZerothOrderOptions::sigma,
                                          "perturbation scale (RGE/SPSA smoothing mu, NES sigma), per pixel RMS in every basis"), 1e-9, 100.0), zo), "gezo.sigma"));
  t.push_back(for_methods(ranged(make_key("gezo.momentum", Kind::kReal, &C::zo, &ZerothOrderOptions::momentum,
                                          "GeZO velocity decay m"), 0.0, 0.999), gezo_only));
  t.push_back(for_methods(ranged(make_key("gezo.sigma_decay", Kind::kReal, &C::zo, &ZerothOrderOptions::sigma_decay,
                                          "GeZO: sigma *= decay when no candidate improves"), 0.01, 1.0), gezo_only));
  t.push_back(for_methods(ranged(make_key("gezo.sigma_min", Kind::kReal, &C::zo, &ZerothOrderOptions::sigma_min,
                                          "GeZO: lower bound of sigma"), 0.0, 100.0), gezo_only));
  t.push_back(added_later(for_methods(choice(make_key("gezo.on_reject", Kind::kChoice, &C::zo, &ZerothOrderOptions::on_reject,
                                                      "GeZO, when no candidate improves: keep the velocity (the "
                                                      "paper's; the look-ahead stays where it failed) or decay it by "
                                                      "gezo.momentum (the look-ahead returns to the current noise)"),
                                             {"keep", "decay"}), gezo_only)));
  t.push_back(added_later(for_methods(ranged(make_key("gezo.sigma_growth", Kind::kReal, &C::zo, &ZerothOrderOptions::sigma_growth,
                                                      "GeZO: sigma *= sigma_growth after an accepted iteration, never "
                                                      "above zo.sigma (1 = never grows, the paper's)"),
                                             1.0, 100.0), gezo_only)));
  t.push_back(renamed_from(for_methods(ranged(make_key("zo.budget", Kind::kInt, &C::zo, &ZerothOrderOptions::budget,
                                          "images the editor may embed (0 = unlimited)"), 0, 1e15), zo), "gezo.budget"));
  t.push_back(renamed_from(for_methods(choice(make_key("zo.optimizer", Kind::kChoice, &C::zo, &ZerothOrderOptions::optimizer,
                                          "RGE/SPSA/NES update rule"), {"sgd", "adam"}), sgd), "gezo.optimizer"));
  t.push_back(renamed_from(for_methods(ranged(make_key("zo.lr", Kind::kReal, &C::zo, &ZerothOrderOptions::lr,
                                          "RGE/SPSA/NES learning rate"), 1e-12, 100.0), sgd), "gezo.lr"));
  t.push_back(added_later(for_methods(choice(make_key("nes.shaping", Kind::kChoice, &C::zo, &ZerothOrderOptions::shaping,
                                                      "NES fitness shaping: rank (centred ranks of the 2q losses) or "
                                                      "none (the raw loss differences, i.e. RGE's estimate)"),
                                             {"rank", "none"}), {"nes"})));
}

// comm
void add_comm_keys(std::vector<KeySpec>& t) {
  const std::vector<std::string> dense{"rge", "spsa"};
  const auto zo = method_names({MethodKind::kZerothOrder});
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
}

// api (simulated black box)
void add_api_keys(std::vector<KeySpec>& t) {
  const auto zo = method_names({MethodKind::kZerothOrder});
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
}

// sweep
void add_sweep_keys(std::vector<KeySpec>& t) {
  t.push_back(ranged(make_key("sweep.seeds", Kind::kInt, &C::sweep, &SweepOptions::seed,
                              "run seed (a list makes a seed axis)"),
                     0, 4294967295.0));
  t.push_back(ranged(make_run_key("sweep.ranks_per_experiment", Kind::kInt, &RunConfig::ranks_per_experiment,
                                  "ranks sharing one experiment (zeroth-order queries are split)"),
                     1, 100000));
}

// output / run: do not change results
void add_output_and_run_keys(std::vector<KeySpec>& t) {
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
}

}  // namespace

const std::vector<KeySpec>& key_table() {
  static const std::vector<KeySpec> table = [] {
    std::vector<KeySpec> t;
    add_data_keys(t);
    add_fm_keys(t);
    add_pretrain_keys(t);
    add_probe_keys(t);
    add_dne_keys(t);
    add_vae_keys(t);
    add_gezo_keys(t);
    add_comm_keys(t);
    add_api_keys(t);
    add_sweep_keys(t);
    add_output_and_run_keys(t);
    return t;
  }();
  return table;
}

}  // namespace dne::config::detail
