// Config parsing, validation, overrides, sweep expansion and id stability, on hand-written TOML.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "dne/config/config.hpp"
#include "dne/config/methods.hpp"
#include "dne/config/run_settings.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"

namespace {

using dne::ConfigError;
using namespace dne::config;

/// Message of the ConfigError `fn` throws ("" if none).
template <class Fn>
std::string config_error(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsWhenEmpty) {
  auto experiments = expand(parse_text("", "empty.toml"));
  ASSERT_EQ(experiments.size(), 1u);
  EXPECT_EQ(experiments[0].data.image_size, 64);
  EXPECT_EQ(experiments[0].dne.method, "whitebox");
}

TEST(Config, ParsesEverySectionAndPromotesIntToReal) {
  const auto src = parse_text("[data]\nimage_size = 32\nbias = 1\n[dne]\nmethod = \"whitebox\"\nlambda = 2\n"
                              "[sweep]\nseeds = 7\n[output]\nsave_embeddings = true\n",
                              "a.toml");
  auto c = expand(src)[0];
  EXPECT_EQ(c.data.image_size, 32);
  EXPECT_DOUBLE_EQ(c.data.bias, 1.0);
  EXPECT_EQ(c.dne.method, "whitebox");
  EXPECT_DOUBLE_EQ(c.dne.lambda, 2.0);
  EXPECT_EQ(c.sweep.seed, 7);
  EXPECT_TRUE(read_run_config(src).save_embeddings);  // a run-wide key: read once, in no experiment
}

TEST(Config, UnknownKeyNamesKeyAndLine) {
  const auto msg = config_error([] { parse_text("[dne]\nlambda = 1\nlamda = 2\n", "x.toml"); });
  EXPECT_NE(msg.find("x.toml:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'dne.lamda'"), std::string::npos) << msg;
}

TEST(Config, WrongTypeAndRangeAndChoice) {
  auto m1 = config_error([] { parse_text("[data]\nimage_size = \"big\"\n", "x.toml"); });
  EXPECT_NE(m1.find("data.image_size: expected an integer"), std::string::npos) << m1;
  auto m2 = config_error([] { parse_text("[data]\nbias = 1.5\n", "x.toml"); });
  EXPECT_NE(m2.find("data.bias: 1.5 is out of range [0.0, 1.0]"), std::string::npos) << m2;
  auto m3 = config_error([] { parse_text("[dne]\nmethod = \"magic\"\n", "x.toml"); });
  EXPECT_NE(m3.find("\"magic\" is not one of: none, random, whitebox"), std::string::npos) << m3;
  auto m4 = config_error([] { parse_text("[data]\nimage_size = 32.0\n", "x.toml"); });
  EXPECT_NE(m4.find("expected an integer"), std::string::npos) << m4;
}

TEST(Config, SyntaxErrorHasPosition) {
  const auto msg = config_error([] { parse_text("[data\n", "bad.toml"); });
  EXPECT_EQ(msg.rfind("bad.toml:1:", 0), 0u) << msg;
}

TEST(Config, MissingFile) {
  const auto msg = config_error([] { parse_file("/nonexistent/dir/c.toml"); });
  EXPECT_EQ(msg, "/nonexistent/dir/c.toml: cannot read config file");
}

TEST(Config, CrossFieldValidation) {
  auto m1 = config_error([] { expand(parse_text("[data]\nsource = \"manifest\"\n", "x.toml")); });
  EXPECT_NE(m1.find("data.manifest must name a CSV file"), std::string::npos) << m1;
  auto m2 = config_error([] { expand(parse_text("[data]\nseverity_min = 0.9\nseverity_max = 0.5\n", "x.toml")); });
  EXPECT_NE(m2.find("data.severity_min (0.9) is larger than data.severity_max (0.5)"), std::string::npos) << m2;
  auto m3 = config_error([] { expand(parse_text("[data]\nimage_size = 40\n", "x.toml")); });
  EXPECT_NE(m3.find("multiple of 16"), std::string::npos) << m3;
}

TEST(Config, OverridesParseTomlValuesAndBareWords) {
  auto src = parse_text("[dne]\nlambda = 1.0\n", "x.toml");
  apply_override(src, "dne.lambda=0.25");
  apply_override(src, "dne.objective=confusion");  // bare word -> string
  apply_override(src, "output.dir=\"/tmp/x y\"");  // quoted string
  auto c = expand(src)[0];
  EXPECT_DOUBLE_EQ(c.dne.lambda, 0.25);
  EXPECT_EQ(c.dne.objective, "confusion");
  EXPECT_EQ(read_run_config(src).output_dir, "/tmp/x y");
  EXPECT_NE(config_error([&] { apply_override(src, "dne.nope=1"); }).find("unknown key 'dne.nope'"), std::string::npos);
  EXPECT_NE(config_error([&] { apply_override(src, "novalue"); }).find("expected key=value"), std::string::npos);
  EXPECT_NE(config_error([&] { apply_override(src, "data.bias=2"); }).find("out of range"), std::string::npos);
}

TEST(Config, StringKeysHoldingNumbersTakeANumberAsItsText) {
  auto src = parse_text("[data]\nn_val = 100\n[fm]\nkind = \"vit\"\nstd = 1\n[vae]\nhidden = 128\n", "x.toml");
  apply_override(src, "fm.mean=0.5");
  apply_override(src, "probes.l2_choices=0.001");
  const auto c = expand(src)[0];
  EXPECT_EQ(c.fm.mean, "0.5");
  EXPECT_EQ(c.fm.std, "1");
  EXPECT_EQ(c.vae.hidden, "128");
  EXPECT_EQ(c.probes.l2_choices, "0.001");
  // The same id as the quoted form: the value is the text either way.
  auto quoted = parse_text("[data]\nn_val = 100\n[fm]\nkind = \"vit\"\nstd = \"1\"\nmean = \"0.5\"\n[vae]\nhidden = \"128\"\n"
                           "[probes]\nl2_choices = \"0.001\"\n", "y.toml");
  EXPECT_EQ(expand(quoted)[0].id(), c.id());
  // A string key of another kind still wants a string.
  const auto m = config_error([] { parse_text("[data]\nmanifest = 5\n", "x.toml"); });
  EXPECT_NE(m.find("data.manifest: expected a string, got 5"), std::string::npos) << m;
}

TEST(Config, ResampleFractionIsReadBySubsampleOnly) {
  const auto id_of = [](const std::string& text) { return expand(parse_text(text, "x.toml")).front().id(); };
  EXPECT_EQ(id_of("[data]\nresample_fraction = 0.5\n"), id_of(""));  // resample = none: not read
  EXPECT_EQ(id_of("[data]\nresample = \"none\"\n"), id_of(""));     // the default keeps today's ids
  EXPECT_NE(id_of("[data]\nresample = \"subsample\"\nresample_fraction = 0.5\n"),
            id_of("[data]\nresample = \"subsample\"\n"));
  EXPECT_EQ(id_of("[data]\nresample = \"bootstrap\"\nresample_fraction = 0.5\n"),
            id_of("[data]\nresample = \"bootstrap\"\n"));
}

TEST(Config, IntegerRangesAreWrittenAsIntegers) {
  const auto m = config_error([] { parse_text("[fm]\nin_chans = 17\n", "x.toml"); });
  EXPECT_NE(m.find("fm.in_chans: 17 is out of range [1, 16]"), std::string::npos) << m;
  const auto keys = describe_keys();
  EXPECT_NE(keys.find("range [1, 16]"), std::string::npos);
  EXPECT_EQ(keys.find("range [1.0, 16.0]"), std::string::npos);
  EXPECT_NE(keys.find("range [0.0, 1.0]"), std::string::npos);  // a real key keeps its decimals
}

TEST(Config, ListsAreAxesCartesianProductInTableOrder) {
  // Axes given in file order seeds-then-lambda expand in key-table order (dne.lambda before sweep.seeds).
  auto src = parse_text("[sweep]\nseeds = [0, 1, 2]\n[dne]\nlambda = [0.1, 1.0]\n", "x.toml");
  ASSERT_EQ(src.axes.size(), 2u);
  EXPECT_EQ(src.axes[0], "dne.lambda");
  auto e = expand(src);
  ASSERT_EQ(e.size(), 6u);
  EXPECT_DOUBLE_EQ(e[0].dne.lambda, 0.1);
  EXPECT_EQ(e[0].sweep.seed, 0);
  EXPECT_EQ(e[2].sweep.seed, 2);
  EXPECT_DOUBLE_EQ(e[3].dne.lambda, 1.0);
  apply_override(src, "sweep.seeds=[5]");
  EXPECT_EQ(expand(src).size(), 2u);
  EXPECT_NE(config_error([] { parse_text("[dne]\nlambda = []\n", "x.toml"); }).find("empty list"), std::string::npos);
}

TEST(Config, MethodSpecificKeysDoNotMultiplyErm) {
  // 2 methods x 3 lambdas: ERM ignores lambda, so 1 + 3 experiments, ERM first.
  auto e = expand(parse_text("[dne]\nmethod = [\"none\", \"whitebox\"]\nlambda = [0.0, 0.1, 1.0]\n", "x.toml"));
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].dne.method, "none");
  EXPECT_DOUBLE_EQ(e[0].dne.lambda, DneOptions{}.lambda);
  EXPECT_EQ(e[1].dne.method, "whitebox");
  EXPECT_DOUBLE_EQ(e[3].dne.lambda, 1.0);
}

TEST(Config, ZerothOrderKeysCollapseForMethodsThatIgnoreThem) {
  // GeZO ignores comm.mode (dense applies to RGE/SPSA): 1 experiment, not 2. RGE ignores
  // gezo.local_epochs: 2 experiments (the two modes), not 4.
  auto g = expand(parse_text("[dne]\nmethod = \"gezo\"\n[comm]\nmode = [\"seed\", \"dense\"]\n", "x.toml"));
  EXPECT_EQ(g.size(), 1u);
  auto r = expand(parse_text("[dne]\nmethod = \"rge\"\n[comm]\nmode = [\"seed\", \"dense\"]\n"
                             "[gezo]\nlocal_epochs = [1, 5]\n", "x.toml"));
  EXPECT_EQ(r.size(), 2u);
}

TEST(Config, VaeKeysCollapseForOtherMethodsAndAreChecked) {
  // ERM ignores the two latent sizes and the adversary weights: 1 + 2 x 2 experiments.
  auto e = expand(parse_text("[dne]\nmethod = [\"none\", \"vae\"]\n[vae]\nlatent = [8, 16]\n"
                             "adversary_weight = [0.0, 1.0]\nhidden = \"64,32\"\n", "x.toml"));
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].vae.latent, VaeOptions{}.latent);
  EXPECT_EQ(e[0].vae.hidden, VaeOptions{}.hidden);
  EXPECT_EQ(e[4].vae.latent, 16);
  EXPECT_EQ(e[4].vae.hidden, "64,32");
  auto msg = config_error([] { expand(parse_text("[dne]\nmethod = \"vae\"\n[vae]\nhidden = \"64,0.5\"\n", "x.toml")); });
  EXPECT_NE(msg.find("vae.hidden: \"64,0.5\": every width must be a whole number"), std::string::npos) << msg;
  msg = config_error([] { expand(parse_text("[dne]\nmethod = \"vae\"\n[vae]\nadversary_objective = \"x\"\n", "x.toml")); });
  EXPECT_NE(msg.find("adversary_objective"), std::string::npos) << msg;
}

TEST(Config, KeysAddedLaterLeaveOtherIdsAlone) {
  // The [vae] keys and the phantom's age keys are left out of the canonical (and pretraining) text
  // at their defaults, so configs that do not use them keep the ids they had before.
  const auto plain = expand(parse_text("", "x.toml")).front();
  for (const char* key : {"[vae]", "latent", "age_effect", "age_bias"}) {
    EXPECT_EQ(plain.canonical_text().find(key), std::string::npos) << key;
    EXPECT_EQ(plain.pretrain_text().find(key), std::string::npos) << key;
  }
  EXPECT_NE(plain.resolved_text().find("age_effect = 0"), std::string::npos);  // shown, not hashed
  const auto vae = expand(parse_text("[dne]\nmethod = \"vae\"\n[vae]\nlatent = 16\n", "x.toml")).front();
  EXPECT_NE(vae.canonical_text().find("[vae]\nlatent = 16\n"), std::string::npos) << vae.canonical_text();
  const auto aged = expand(parse_text("[data]\nage_effect = 0.2\n", "x.toml")).front();
  EXPECT_NE(aged.pretrain_text().find("age_effect = 0.2"), std::string::npos);  // it changes the images
  EXPECT_NE(aged.id(), plain.id());
}

TEST(Config, EmbeddingsSourceTakesOnlyMethodsThatNeedNoImages) {
  const std::string base = "[data]\nsource = \"embeddings\"\nembeddings = \"e.h5\"\n[dne]\nmethod = ";
  EXPECT_EQ(expand(parse_text(base + "[\"none\", \"vae\"]\n", "x.toml")).size(), 2u);
  auto msg = config_error([&] { expand(parse_text(base + "\"gezo\"\n", "x.toml")); });
  EXPECT_NE(msg.find("x.toml: dne.method = \"gezo\" adds a noise to images, and data.source = \"embeddings\" has none: "
                     "use one of the methods that work on embeddings (none, vae)"), std::string::npos) << msg;
  msg = config_error([] { expand(parse_text("[data]\nsource = \"embeddings\"\n[dne]\nmethod = \"none\"\n", "x.toml")); });
  EXPECT_NE(msg.find("data.embeddings must name an HDF5 file"), std::string::npos) << msg;
  // The other sources' keys collapse to their defaults, and are named as read by no experiment.
  const auto src = parse_text("[data]\nsource = \"embeddings\"\nembeddings = \"e.h5\"\nn_train = 50\n[dne]\nmethod = \"none\"\n", "x.toml");
  const auto e = expand(src);
  EXPECT_EQ(e.front().data.n_train, ExperimentConfig().data.n_train);
  EXPECT_EQ(unread_keys(src, e), (std::vector<std::string>{"data.n_train (read only when data.source = phantom)"}));
  const auto phantom = parse_text("[data]\nembeddings = \"e.h5\"\n", "x.toml");
  EXPECT_EQ(unread_keys(phantom, expand(phantom)),
            (std::vector<std::string>{"data.embeddings (read only when data.source = embeddings)"}));
}

TEST(Config, NoiseBasisKeys) {
  // Added later: at their defaults they are in no canonical text, so earlier ids stand.
  const auto plain = expand(parse_text("[dne]\nmethod = \"gezo\"\n", "x.toml")).front();
  for (const char* key : {"noise_basis", "noise_dim", "eval_every", "[nes]", "shaping"})
    EXPECT_EQ(plain.canonical_text().find(key), std::string::npos) << key;
  // noise_dim is read by lowres and dct only: the pixel basis collapses it (3 experiments, not 4).
  const auto grid = expand(parse_text("[dne]\nmethod = \"nes\"\nnoise_basis = [\"pixel\", \"dct\"]\nnoise_dim = [8, 16]\n", "x.toml"));
  ASSERT_EQ(grid.size(), 3u);
  EXPECT_EQ(grid[0].dne.noise_basis, "pixel");
  EXPECT_NE(grid[1].canonical_text().find("noise_basis = \"dct\"\n"), std::string::npos) << grid[1].canonical_text();
  EXPECT_NE(grid[2].canonical_text().find("noise_basis = \"dct\"\nnoise_dim = 16\n"), std::string::npos) << grid[2].canonical_text();
  // ERM reads none of them; NES reads nes.shaping, GeZO does not.
  EXPECT_EQ(expand(parse_text("[dne]\nmethod = [\"none\", \"whitebox\"]\nnoise_basis = [\"pixel\", \"lowres\"]\n", "x.toml")).size(), 3u);
  const auto shaped = expand(parse_text("[dne]\nmethod = [\"nes\", \"gezo\"]\n[nes]\nshaping = [\"rank\", \"none\"]\n", "x.toml"));
  EXPECT_EQ(shaped.size(), 3u);
  auto msg = config_error([] { expand(parse_text("[dne]\nmethod = \"nes\"\nnoise_basis = \"dct\"\nnoise_dim = 65\n", "x.toml")); });
  EXPECT_NE(msg.find("dne.noise_dim = 65 is larger than data.image_size = 64"), std::string::npos) << msg;
  msg = config_error([] { expand(parse_text("[dne]\nmethod = \"nes\"\neval_every = 1000\n", "x.toml")); });
  EXPECT_NE(msg.find("dne.eval_every needs a validation split"), std::string::npos) << msg;
  msg = config_error([] { expand(parse_text("[dne]\nmethod = \"nes\"\nnoise_basis = \"wavelet\"\n", "x.toml")); });
  EXPECT_NE(msg.find("dne.noise_basis"), std::string::npos) << msg;
  // NES exchanges losses only: comm.mode does not multiply its experiments.
  EXPECT_EQ(expand(parse_text("[dne]\nmethod = \"nes\"\n[comm]\nmode = [\"seed\", \"dense\"]\n", "x.toml")).size(), 1u);
}

TEST(Config, SigmaMinAboveSigmaIsRejectedForGezo) {
  const auto msg = config_error([] {
    expand(parse_text("[dne]\nmethod = \"gezo\"\n[gezo]\nsigma = 0.01\nsigma_min = 0.1\n", "x.toml"));
  });
  EXPECT_NE(msg.find("gezo.sigma_min (0.1) is larger than zo.sigma (0.01)"), std::string::npos) << msg;
}

TEST(Config, SetValueKeepsPathTextVerbatim) {
  auto src = parse_text("", "x.toml");
  set_value(src, "output.dir", std::string("runs/a\\tb \"q\""));
  EXPECT_EQ(read_run_config(src).output_dir, "runs/a\\tb \"q\"");
}

// Figure-2 style file: two one-dimensional ablations and a baseline as a union of grids.
const char* kGrids =
    "[dne]\nmethod = \"whitebox\"\nlambda = 0.01\n[gezo]\nlocal_epochs = 2\n[sweep]\nseeds = [0, 1, 2]\n"
    "[[grid]]\ndne.method = [\"whitebox\", \"gezo\"]\ndne.lambda = [0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]\n"
    "[[grid]]\ndne.method = \"gezo\"\ngezo.local_epochs = [1, 2, 5, 10]\n"
    "[[grid]]\n[grid.dne]\nmethod = \"none\"\n";

TEST(Config, GridsAreAUnionOfProductsWithDuplicatesOnce) {
  const auto src = parse_text(kGrids, "fig2.toml");
  EXPECT_EQ(src.axes, (std::vector<std::string>{"dne.method", "dne.lambda", "gezo.local_epochs", "sweep.seeds"}));
  const auto e = expand(src);
  // Grid 1: 2 methods x 6 lambdas; grid 2: 4 local epochs, of which (gezo, 0.01, R = 2) is in grid 1;
  // grid 3: ERM. Each times 3 seeds: (12 + 3 + 1) * 3 = 48.
  ASSERT_EQ(e.size(), 48u);
  int whitebox = 0, gezo = 0, none = 0, gezo_r10 = 0, whitebox_lambda0 = 0;
  std::vector<std::string> ids;
  for (const auto& c : e) {
    ids.push_back(c.id());
    whitebox += c.dne.method == "whitebox";
    gezo += c.dne.method == "gezo";
    none += c.dne.method == "none";
    gezo_r10 += c.dne.method == "gezo" && c.zo.local_epochs == 10;
    whitebox_lambda0 += c.dne.method == "whitebox" && c.dne.lambda == 0.0;
    if (c.dne.method == "whitebox") {
      EXPECT_EQ(c.zo.local_epochs, 2);  // default: not a white-box key
    }
    if (c.dne.method == "gezo" && c.zo.local_epochs != 2) {
      EXPECT_EQ(c.dne.lambda, 0.01);
    }
  }
  EXPECT_EQ(whitebox, 18);
  EXPECT_EQ(gezo, 18 + 9);
  EXPECT_EQ(none, 3);
  EXPECT_EQ(gezo_r10, 3);
  EXPECT_EQ(whitebox_lambda0, 3);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()), ids.end());
}

TEST(Config, OverrideReplacesAGridKeyEverywhere) {
  auto src = parse_text(kGrids, "fig2.toml");
  apply_override(src, "dne.lambda=0.5");
  apply_override(src, "sweep.seeds=7");
  // Grid 1: 2 methods at lambda 0.5; grid 2: 4 local epochs (R = 2 at 0.5 duplicates grid 1); ERM.
  const auto e = expand(src);
  EXPECT_EQ(e.size(), 2u + 3u + 1u);
  for (const auto& c : e) {
    EXPECT_EQ(c.sweep.seed, 7);
    if (c.dne.method != "none") {
      EXPECT_EQ(c.dne.lambda, 0.5);
    }
  }
}

TEST(Config, BadGridsNameTheirPlace) {
  EXPECT_NE(config_error([] { parse_text("grid = 3\n", "g.toml"); }).find("g.toml:1:"), std::string::npos);
  EXPECT_NE(config_error([] { parse_text("grid = 3\n", "g.toml"); }).find("[[grid]]"), std::string::npos);
  const auto m = config_error([] { parse_text("[[grid]]\ndne.lamda = [1, 2]\n", "g.toml"); });
  EXPECT_NE(m.find("g.toml:2:"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown key 'dne.lamda'"), std::string::npos) << m;
  EXPECT_NE(config_error([] { parse_text("[[grid]]\n[[grid]]\ndne.lambda = 1\n", "g.toml"); }).find("empty [[grid]]"),
            std::string::npos);
}

TEST(Config, MethodsReadingAKey) {
  EXPECT_EQ(methods_reading("gezo.local_epochs"), (std::vector<std::string>{"gezo"}));
  EXPECT_EQ(methods_reading("dne.lambda"), (std::vector<std::string>{"whitebox", "gezo", "rge", "spsa", "nes"}));
  EXPECT_EQ(methods_reading("nes.shaping"), (std::vector<std::string>{"nes"}));
  EXPECT_EQ(methods_reading("comm.mode"), (std::vector<std::string>{"rge", "spsa"}));  // NES exchanges losses only
  EXPECT_EQ(methods_reading("dne.noise_basis"), (std::vector<std::string>{"whitebox", "gezo", "rge", "spsa", "nes"}));
  EXPECT_EQ(methods_reading("data.bias").size(), method_names().size());  // every method
  EXPECT_THROW(methods_reading("dne.lamda"), ConfigError);
}

TEST(Config, IdIsStableAcrossKeyOrderAndIgnoresOutputKeys) {
  const auto a_source = parse_text("[dne]\nlambda = 0.5\nmethod = \"whitebox\"\n[output]\ndir = \"a\"\n", "a.toml");
  auto a = expand(a_source)[0];
  auto b = expand(parse_text("[output]\ndir = \"b\"\n[dne]\nmethod = \"whitebox\"\nlambda = 0.5\n", "b.toml"))[0];
  auto c = expand(parse_text("[dne]\nlambda = 0.5000001\nmethod = \"whitebox\"\n", "c.toml"))[0];
  EXPECT_EQ(a.id(), b.id());
  EXPECT_NE(a.id(), c.id());
  EXPECT_EQ(a.id().size(), 16u);
  EXPECT_EQ(a.canonical_text().find("[output]"), std::string::npos);
  EXPECT_EQ(a.resolved_text().find("dir = \"a\""), std::string::npos);  // the experiment's keys only
  const auto with_run = resolved_text(a, read_run_config(a_source));
  EXPECT_NE(with_run.find("[output]\ndir = \"a\""), std::string::npos) << with_run;
  // What an experiment file stores reads back as the same experiment and the same run.
  const auto back = parse_text(with_run, "stored.toml");
  EXPECT_EQ(expand(back)[0].canonical_text(), a.canonical_text());
  EXPECT_EQ(read_run_config(back).output_dir, "a");
}

TEST(Config, CanonicalTextRoundTrips) {
  auto a = expand(parse_text("[dne]\nlambda = 0.1\n[data]\nbias = 0.3333333333333333\n", "a.toml"))[0];
  auto b = expand(parse_text(a.resolved_text(), "resolved.toml"))[0];
  EXPECT_EQ(a.canonical_text(), b.canonical_text());
  EXPECT_DOUBLE_EQ(b.data.bias, 0.3333333333333333);
}

TEST(Config, Fnv1aKnownValues) {
  // Published FNV-1a 64 test vectors.
  EXPECT_EQ(dne::fnv1a64(std::string()), 0xcbf29ce484222325ull);
  EXPECT_EQ(dne::fnv1a64(std::string("a")), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(dne::fnv1a64(std::string("foobar")), 0x85944171f73967e8ull);
}

TEST(Config, ViTKeysAndChannelValues) {
  EXPECT_EQ(channel_values("0.5", 3, "fm.mean"), (std::vector<double>{0.5, 0.5, 0.5}));
  // the reference code's chest X-ray normalisation (util/datasets.py: 0.5056, 0.252)
  EXPECT_EQ(channel_values("chest_xray", 3, "fm.mean"), (std::vector<double>{0.5056, 0.5056, 0.5056}));
  EXPECT_EQ(channel_values("chest_xray", 1, "fm.std"), (std::vector<double>{0.252}));
  EXPECT_EQ(channel_values(" 0.485, 0.456,0.406 ", 3, "fm.mean"), (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_THROW(channel_values("0.1,0.2", 3, "fm.mean"), dne::ConfigError);
  EXPECT_THROW(channel_values("a", 1, "fm.mean"), dne::ConfigError);
  EXPECT_THROW(channel_values("0.1,", 1, "fm.mean"), dne::ConfigError);
  EXPECT_THROW(channel_values("0", 1, "fm.std"), dne::ConfigError);
  EXPECT_THROW(channel_values("nan", 1, "fm.std"), dne::ConfigError);
  auto vit = [](const std::string& extra) {
    return expand(parse_text("[fm]\nkind = \"vit\"\n" + extra, "v.toml"));
  };
  EXPECT_NO_THROW(vit(""));
  const auto expect_error = [&](const std::string& extra, const std::string& fragment) {
    try {
      vit(extra);
      ADD_FAILURE() << "accepted: " << extra;
    } catch (const dne::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error("patch_size = 7\n", "must be a multiple of fm.patch_size = 7");
  expect_error("heads = 3\n", "fm.heads = 3 must divide fm.embed_dim = 256");
  expect_error("in_chans = 3\nmean = \"0.1,0.2\"\n", "fm.mean");
  expect_error("pool = \"max\"\n", "\"max\" is not one of: cls, mean");
  // A ViT's file with the CNN: not read, so it collapses (and is named).
  const auto cnn = parse_text("[fm]\nweights = \"x.h5\"\n", "w.toml");
  EXPECT_EQ(expand(cnn).front().fm.weights, "");
  EXPECT_EQ(unread_keys(cnn, expand(cnn)), (std::vector<std::string>{"fm.weights (read only when fm.kind = vit)"}));
}

TEST(Config, PretrainKeysStayOutOfExperimentsAndTheFmHashGoesIn) {
  const auto a = expand(parse_text("[fm]\nkind = \"vit\"\n", "a.toml"))[0];
  const auto b = expand(parse_text("[fm]\nkind = \"vit\"\n[pretrain]\nsteps = 7\n", "b.toml"))[0];
  EXPECT_EQ(a.id(), b.id());  // pretraining keys do not change an experiment
  EXPECT_EQ(a.canonical_text().find("[pretrain]"), std::string::npos);
  EXPECT_EQ(a.resolved_text().find("[pretrain]"), std::string::npos);
  EXPECT_NE(a.pretrain_text(), b.pretrain_text());
  EXPECT_NE(b.pretrain_text().find("steps = 7"), std::string::npos);
  // pretrain_text holds [data] (not n_test), the ViT architecture, [pretrain] and the seed only.
  EXPECT_EQ(a.pretrain_text().find("[dne]"), std::string::npos);
  EXPECT_EQ(a.pretrain_text().find("n_test"), std::string::npos);
  EXPECT_EQ(a.pretrain_text().find("pool"), std::string::npos);
  EXPECT_NE(a.pretrain_text().find("depth = 4"), std::string::npos);
  EXPECT_NE(a.pretrain_text().find("seeds = 0"), std::string::npos);
  auto c = a;
  c.fm_hash = "0123456789abcdef";
  EXPECT_NE(c.id(), a.id());
  EXPECT_NE(c.resolved_text().find("# fm.weights content hash: 0123456789abcdef"), std::string::npos);
  // A pretrain key must divide what it splits.
  EXPECT_THROW(expand(parse_text("[pretrain]\nbatch_size = 10\nmicro_batches = 4\n", "p.toml")), dne::ConfigError);
}

TEST(Config, ZerothOrderKeysMovedToZoKeepTheirIdsAndTheFormerNamesStillRead) {
  // The keys every zeroth-order editor reads moved from [gezo] to [zo]: the former names are
  // read as the new ones (noted once each), the canonical text (so the id) keeps the former
  // names, and the resolved text shows the new ones.
  const auto old_src = parse_text("[dne]\nmethod = \"spsa\"\n[gezo]\ncandidates = 3\nsigma = 0.02\nlr = 0.5\n"
                                  "budget = 900\noptimizer = \"sgd\"\n", "old.toml");
  const auto new_src = parse_text("[dne]\nmethod = \"spsa\"\n[zo]\ncandidates = 3\nsigma = 0.02\nlr = 0.5\n"
                                  "budget = 900\noptimizer = \"sgd\"\n", "new.toml");
  auto notes = old_src.deprecated;
  std::sort(notes.begin(), notes.end());
  EXPECT_EQ(notes, (std::vector<std::string>{"gezo.budget is now zo.budget", "gezo.candidates is now zo.candidates",
                                             "gezo.lr is now zo.lr", "gezo.optimizer is now zo.optimizer",
                                             "gezo.sigma is now zo.sigma"}));
  EXPECT_TRUE(new_src.deprecated.empty());
  const auto a = expand(old_src).front(), b = expand(new_src).front();
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(a.zo.candidates, 3);
  EXPECT_EQ(a.zo.lr, 0.5);
  const auto canonical = b.canonical_text();
  EXPECT_NE(canonical.find("[gezo]\nlocal_epochs = 2\ncandidates = 3\nsigma = 0.02\n"), std::string::npos) << canonical;
  EXPECT_EQ(canonical.find("[zo]"), std::string::npos);
  const auto resolved = b.resolved_text();
  EXPECT_NE(resolved.find("[zo]\ncandidates = 3\nsigma = 0.02\nbudget = 900\noptimizer = \"sgd\"\nlr = 0.5\n"),
            std::string::npos) << resolved;
  EXPECT_EQ(resolved.find("[gezo]\nlocal_epochs = 2\ncandidates"), std::string::npos);
  // --set takes either name; the former name and the new one together are one error line.
  auto src = new_src;
  apply_override(src, "gezo.candidates=5");
  EXPECT_EQ(expand(src).front().zo.candidates, 5);
  EXPECT_EQ(src.deprecated, (std::vector<std::string>{"gezo.candidates is now zo.candidates"}));
  const auto msg = config_error([] { parse_text("[gezo]\ncandidates = 3\n[zo]\ncandidates = 4\n", "both.toml"); });
  EXPECT_NE(msg.find("set twice"), std::string::npos) << msg;
  EXPECT_NE(msg.find("keep zo.candidates"), std::string::npos) << msg;
}

TEST(Config, KeysOfAnotherSourceOrKindCollapseLikeMethodKeys) {
  const auto id_of = [](const std::string& text) { return expand(parse_text(text, "x.toml")).front().id(); };
  // A phantom key with a manifest (and the reverse) is dropped: the same experiment as without it.
  const std::string manifest = "[data]\nsource = \"manifest\"\nmanifest = \"m.csv\"\n";
  EXPECT_EQ(id_of(manifest + "n_train = 50\nbias = 0.5\n"), id_of(manifest));
  EXPECT_EQ(id_of("[data]\nmanifest = \"m.csv\"\nlimit_train = 10\n"), id_of(""));
  // Switching the kind by one override drops the other kind's keys (issue 29): a ViT config as CNN.
  auto vit = parse_text("[fm]\nkind = \"vit\"\nweights = \"x.h5\"\npatch_size = 16\nmean = \"0.4\"\n", "v.toml");
  apply_override(vit, "fm.kind=cnn");
  EXPECT_EQ(expand(vit).front().id(), id_of("[fm]\nkind = \"cnn\"\n"));
  EXPECT_EQ(unread_keys(vit, expand(vit)).size(), 3u);  // fm.weights, fm.patch_size, fm.mean
  // The kind as an axis next to the remote keys: each experiment keeps the keys of its kind.
  const auto both = parse_text("[dne]\nmethod = \"gezo\"\n[fm]\nkind = [\"vit\", \"remote\"]\npatch_size = 16\n"
                               "[api]\nurl = \"http://h:1\"\nmodel = \"m\"\n", "b.toml");
  const auto two = expand(both);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].fm.kind, "vit");
  EXPECT_EQ(two[0].api.url, "");
  EXPECT_EQ(two[0].fm.patch_size, 16);
  EXPECT_EQ(two[0].id(), id_of("[dne]\nmethod = \"gezo\"\n[fm]\nkind = \"vit\"\npatch_size = 16\n"));
  EXPECT_EQ(two[1].fm.kind, "remote");
  EXPECT_EQ(two[1].api.url, "http://h:1");
  EXPECT_EQ(two[1].fm.patch_size, ExperimentConfig().fm.patch_size);
  EXPECT_TRUE(unread_keys(both, two).empty());
  // Keys of other methods collapse silently, as always (ERM beside a config's DNE settings).
  const auto erm = parse_text("[dne]\nmethod = \"none\"\nlambda = 0.5\nobjective = \"confusion\"\n", "e.toml");
  EXPECT_TRUE(unread_keys(erm, expand(erm)).empty());
  // dne pretrain reads no dne.* key: a sweep's list of methods does not stop it.
  const auto sweep = parse_text("[dne]\nmethod = [\"none\", \"whitebox\"]\nadversary = [\"frozen\", \"refit\"]\n"
                                "[fm]\nkind = \"vit\"\n[pretrain]\nsteps = 5\n", "s.toml");
  const auto for_pretraining = pretraining_source(sweep);
  EXPECT_TRUE(for_pretraining.axes.empty());
  EXPECT_EQ(expand(for_pretraining).size(), 1u);
  EXPECT_EQ(expand(for_pretraining).front().pretrain.steps, 5);
  // The other source's keys are not in the canonical text, so they cannot split an experiment.
  const auto m = expand(parse_text("[data]\nsource = \"manifest\"\nmanifest = \"m.csv\"\n", "x.toml")).front();
  EXPECT_EQ(m.canonical_text().find("n_train"), std::string::npos);
  EXPECT_EQ(m.canonical_text().find("bias"), std::string::npos);
  EXPECT_NE(m.canonical_text().find("manifest = \"m.csv\""), std::string::npos);
  EXPECT_NE(m.canonical_text().find("resize = \"stretch\""), std::string::npos);
  const auto p = expand(parse_text("", "x.toml")).front();
  EXPECT_EQ(p.canonical_text().find("manifest"), std::string::npos);
  EXPECT_EQ(p.canonical_text().find("limit_train"), std::string::npos);
  EXPECT_NE(p.canonical_text().find("n_train = 2000"), std::string::npos);
  // data.image_hash says how the data hash is computed; the hash itself is in the id.
  EXPECT_EQ(m.canonical_text().find("image_hash"), std::string::npos);
  auto with_data = m;
  with_data.data_hash = "00000000000000aa";
  EXPECT_NE(with_data.id(), m.id());
  EXPECT_NE(with_data.canonical_text().find("# data content hash: 00000000000000aa"), std::string::npos);
}

TEST(Config, SmallImagesWhenTheModelAllowsThem) {
  const auto vit16 = expand(parse_text("[data]\nsource = \"manifest\"\nmanifest = \"m.csv\"\nimage_size = 16\n"
                                       "[fm]\nkind = \"vit\"\npatch_size = 4\n", "x.toml"));
  EXPECT_EQ(vit16.front().data.image_size, 16);
  const auto m1 = config_error([] { expand(parse_text("[data]\nimage_size = 16\n[fm]\nkind = \"vit\"\npatch_size = 4\n", "x.toml")); });
  EXPECT_NE(m1.find("the phantom needs at least 32 pixels"), std::string::npos) << m1;
  const auto m2 = config_error([] {
    expand(parse_text("[data]\nsource = \"manifest\"\nmanifest = \"m.csv\"\nimage_size = 28\n", "x.toml"));
  });
  EXPECT_NE(m2.find("multiple of 16"), std::string::npos) << m2;  // the built-in CNN
  EXPECT_THROW(expand(parse_text("[data]\nimage_size = 15\n", "x.toml")), dne::ConfigError);
}

TEST(Hash, FileFingerprintsFromIndependentValues) {
  const std::string path = ::testing::TempDir() + "/dne_hash_check.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << "123456789";
  }
  // CRC-32 check value of "123456789" (the standard's test vector) and the size.
  EXPECT_EQ(dne::file_fingerprint(path, dne::FileFingerprint::kContent), "crc32:cbf43926:9");
  EXPECT_EQ(dne::file_content_hash(path), dne::hex16(dne::fnv1a64(std::string("123456789"))));
  EXPECT_EQ(dne::hex16(0xaf63dc4c8601ec8cull), "af63dc4c8601ec8c");
  EXPECT_EQ(dne::file_fingerprint(path, dne::FileFingerprint::kStat).rfind("stat:9:", 0), 0u);
  {
    std::ofstream out(path, std::ios::binary);
    out << "123456788";  // one byte changed
  }
  EXPECT_NE(dne::file_fingerprint(path, dne::FileFingerprint::kContent), "crc32:cbf43926:9");
  EXPECT_THROW(dne::file_fingerprint(path + ".missing", dne::FileFingerprint::kContent), dne::DataError);
}

}  // namespace

TEST(Methods, OneTableDrivesChoicesKindsAndKeys) {
  using dne::config::MethodKind;
  EXPECT_EQ(dne::config::method_names(), (std::vector<std::string>{"none", "random", "whitebox", "gezo", "rge", "spsa", "nes", "vae"}));
  EXPECT_EQ(dne::config::method_names({MethodKind::kZerothOrder}), (std::vector<std::string>{"gezo", "rge", "spsa", "nes"}));
  EXPECT_EQ(dne::config::kind_name(dne::config::method_info("gezo").kind), "zeroth_order");
  EXPECT_EQ(dne::config::method_info("whitebox").trace_x, "images");
  EXPECT_TRUE(dne::config::learns_noise("spsa"));
  EXPECT_FALSE(dne::config::learns_noise("random"));
  // the keys a method reads follow its kind
  EXPECT_EQ(methods_reading("dne.lambda"), dne::config::method_names({MethodKind::kWhiteBox, MethodKind::kZerothOrder}));
  EXPECT_EQ(methods_reading("zo.sigma"), dne::config::method_names({MethodKind::kZerothOrder}));
  EXPECT_EQ(methods_reading("dne.max_linf"),
            dne::config::method_names({MethodKind::kControl, MethodKind::kWhiteBox, MethodKind::kZerothOrder}));
  EXPECT_EQ(dne::config::kind_name(dne::config::method_info("vae").kind), "embedding");
  EXPECT_EQ(dne::config::method_info("vae").trace_x, "epochs");
  EXPECT_FALSE(dne::config::learns_noise("vae"));
  EXPECT_FALSE(dne::config::needs_images("vae"));
  EXPECT_FALSE(dne::config::needs_images("none"));
  EXPECT_TRUE(dne::config::needs_images("random"));
  EXPECT_EQ(methods_reading("vae.latent"), (std::vector<std::string>{"vae"}));
  const auto msg = config_error([] { dne::config::method_info("adv"); });
  EXPECT_NE(msg.find("unknown method 'adv' (one of: none, random, whitebox, gezo, rge, spsa, nes, vae)"), std::string::npos) << msg;
}

TEST(Config, RemoteFmKeys) {
  const std::string remote = "[fm]\nkind = \"remote\"\n[api]\nurl = \"http://h:1\"\nmodel = \"m\"\n[dne]\nmethod = \"gezo\"\n";
  const auto one = [](const std::string& text) { return expand(parse_text(text, "r.toml")).front(); };
  const auto base = one(remote);
  EXPECT_EQ(base.api.url, "http://h:1");
  EXPECT_EQ(base.api.concurrency, 1);
  // url and model enter the id; transport keys do not.
  EXPECT_NE(one("[fm]\nkind = \"remote\"\n[api]\nurl = \"http://h:2\"\nmodel = \"m\"\n[dne]\nmethod = \"gezo\"\n").id(), base.id());
  const auto transport = one("[fm]\nkind = \"remote\"\n[api]\nurl = \"http://h:1\"\nmodel = \"m\"\nconcurrency = 4\n"
                             "timeout_s = 2\nretries = 9\ntoken_env = \"T\"\nbinary = true\n[dne]\nmethod = \"gezo\"\n");
  EXPECT_EQ(transport.id(), base.id());
  // Configs without a remote FM keep their ids: the new keys are left out at their defaults.
  EXPECT_EQ(one("").canonical_text().find("api.url"), std::string::npos);
  EXPECT_EQ(one("").canonical_text().find("url"), std::string::npos);
  EXPECT_NE(config_error([&] { one("[fm]\nkind = \"remote\"\n"); }).find("needs api.url"), std::string::npos);
  EXPECT_NE(config_error([&] { one("[fm]\nkind = \"remote\"\n[api]\nurl = \"http://h:1\"\nmodel = \"m\"\n[dne]\nmethod = \"whitebox\"\n"); })
                .find("needs gradients"),
            std::string::npos);
  EXPECT_NE(config_error([&] { one("[fm]\nkind = \"remote\"\n[api]\nurl = \"http://h:1\"\nmodel = \"m\"\nlatency_ms = 5\n[dne]\nmethod = \"gezo\"\n"); })
                .find("api.latency_ms"),
            std::string::npos);
  // With an in-process FM the server's keys collapse: the same experiment as without them.
  EXPECT_EQ(one("[api]\nurl = \"http://h:1\"\nmodel = \"m\"\n").id(), one("").id());
  EXPECT_NE(config_error([&] { one("[fm]\nkind = \"remote\"\n[api]\nurl = \"http://h:1\"\nmodel = \"m\"\nconcurrency = 0\n"); }), "");
}

namespace {

/// One experiment and the run-wide keys of its run.
struct RunAndExperiment {
  dne::config::RunConfig run;
  dne::config::ExperimentConfig c;
};

RunAndExperiment run_config(const std::string& device, const std::string& precision = "fp32",
                            const std::string& backend = "auto") {
  RunAndExperiment r;
  r.run.device = device;
  r.run.backend = backend;
  r.c.run.precision = precision;
  return r;
}

dne::config::RunSettings resolve(const RunAndExperiment& r, int local_rank, const dne::config::DeviceFacts& facts) {
  return dne::config::resolve_run_settings(r.run, {r.c}, local_rank, facts);
}

std::string settings_error(const RunAndExperiment& r, const dne::config::DeviceFacts& facts) {
  try {
    resolve(r, 0, facts);
  } catch (const dne::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RunSettings, DeviceBackendAndPrecisionRule) {
  using dne::config::DeviceFacts;
  // {libtorch_cuda, cuda_devices, nccl_built, group_gpus_distinct}
  const DeviceFacts cpu_only{false, 0, false, false}, cuda_lib_no_device{true, 0, true, false},
      two_gpus{true, 2, true, true}, two_gpus_no_nccl{true, 2, false, true}, two_gpus_four_ranks{true, 2, true, false},
      one_gpu_each{true, 1, true, true};
  // auto on a CPU machine: cpu and MPI, and the line says why.
  auto s = resolve(run_config("auto"), 0, cpu_only);
  EXPECT_EQ(s.device, "cpu");
  EXPECT_EQ(s.backend, "mpi");
  EXPECT_EQ(s.cuda_index, -1);
  EXPECT_NE(s.reason.find("auto: this LibTorch has no CUDA"), std::string::npos) << s.reason;
  EXPECT_NE(resolve(run_config("auto"), 0, cuda_lib_no_device).reason.find("no CUDA device is visible"),
            std::string::npos);
  // auto with two GPUs and groups of 2: node-local rank 1 takes device 1 % 2 = 1, and NCCL.
  auto pairs = run_config("auto");
  pairs.run.ranks_per_experiment = 2;
  s = resolve(pairs, 1, two_gpus);
  EXPECT_EQ(s.device, "cuda");
  EXPECT_EQ(s.cuda_index, 1);
  EXPECT_EQ(s.backend, "nccl");
  // MPI where NCCL gains nothing or would refuse: groups of one rank, no NCCL, two ranks per GPU.
  EXPECT_EQ(resolve(run_config("auto"), 1, two_gpus).backend, "mpi");
  EXPECT_EQ(resolve(pairs, 0, two_gpus_no_nccl).backend, "mpi");
  s = resolve(pairs, 3, two_gpus_four_ranks);
  EXPECT_EQ(s.cuda_index, 1);  // 3 % 2
  EXPECT_EQ(s.backend, "mpi");
  // The documented launchers (launch/rank-env.sh, Slurm --gpus-per-task=1) show each rank one
  // device, its device 0: distinct GPUs by bus id, so NCCL (before: local ranks > 1 device: MPI).
  s = resolve(pairs, 3, one_gpu_each);
  EXPECT_EQ(s.cuda_index, 0);
  EXPECT_EQ(s.backend, "nccl");
  EXPECT_EQ(resolve(run_config("cuda", "bf16", "mpi"), 0, two_gpus).backend, "mpi");
  EXPECT_EQ(resolve(run_config("cpu"), 0, two_gpus).device, "cpu");  // asked for
  // What the machine does not have: one ConfigError naming the key.
  EXPECT_NE(settings_error(run_config("cuda"), cpu_only).find("run.device = \"cuda\": this LibTorch has no CUDA"),
            std::string::npos);
  EXPECT_NE(settings_error(run_config("cuda"), cuda_lib_no_device).find("run.device = \"cuda\": no CUDA device"),
            std::string::npos);
  EXPECT_NE(settings_error(run_config("auto", "bf16"), cpu_only).find("run.precision = \"bf16\""), std::string::npos);
  EXPECT_NE(settings_error(run_config("auto", "fp32", "nccl"), cpu_only).find("comm.backend = \"nccl\" needs GPUs"),
            std::string::npos);
  EXPECT_NE(settings_error(run_config("cuda", "fp32", "nccl"), two_gpus_no_nccl).find("no NCCL communicator"),
            std::string::npos);
  EXPECT_EQ(settings_error(run_config("cuda", "tf32", "nccl"), two_gpus), "");
}

TEST(RunSettings, GpusAreDistinctWithinGroupsByHostAndBusId) {
  using dne::config::gpus_distinct_within_groups;
  // Two ranks per node, one visible device each (both "device 0"), different physical GPUs.
  EXPECT_TRUE(gpus_distinct_within_groups({"n1/0000:3B:00.0", "n1/0000:5E:00.0", "n2/0000:3B:00.0", "n2/0000:5E:00.0"}, 2));
  // Groups of 4 across the two nodes: the same bus id on two hosts is two GPUs.
  EXPECT_TRUE(gpus_distinct_within_groups({"n1/0000:3B:00.0", "n1/0000:5E:00.0", "n2/0000:3B:00.0", "n2/0000:5E:00.0"}, 4));
  // Two ranks of one group on one GPU (one H100, two ranks): NCCL would refuse.
  EXPECT_FALSE(gpus_distinct_within_groups({"n1/0000:3B:00.0", "n1/0000:3B:00.0"}, 2));
  // Sharing across groups is fine (each group is its own communicator).
  EXPECT_TRUE(gpus_distinct_within_groups({"n1/0000:3B:00.0", "n1/0000:5E:00.0", "n1/0000:3B:00.0", "n1/0000:5E:00.0"}, 2));
  // A rank without a device, and leftover ranks (5 ranks in groups of 2: rank 4 takes no experiment).
  EXPECT_FALSE(gpus_distinct_within_groups({"n1/0000:3B:00.0", ""}, 2));
  EXPECT_TRUE(gpus_distinct_within_groups({"a/1", "a/2", "a/3", "a/4", ""}, 2));
  EXPECT_FALSE(gpus_distinct_within_groups({"a/1"}, 0));
}

TEST(RunSettings, PrecisionEntersTheIdOnlyWhenNotFp32AndDeviceNever) {
  using namespace dne::config;
  const ExperimentConfig base;
  const auto gpu = expand(parse_text("[run]\ndevice = \"cuda\"\n[comm]\nbackend = \"nccl\"\ntimeout_s = 5\n", "gpu.toml"))[0];
  EXPECT_EQ(gpu.id(), base.id());  // where it runs is not a different experiment (a run-wide key)
  EXPECT_THROW(get_value(gpu, "run.device"), dne::ConfigError);
  auto bf16 = gpu;
  bf16.run.precision = "bf16";
  EXPECT_NE(bf16.id(), base.id());  // bf16 forwards give other numbers: another experiment
}

TEST(Config, RunWideKeysTakeOneValuePerRunAndAreInNoExperiment) {
  using namespace dne::config;
  for (const char* text : {"[run]\nthreads = [1, 2]\n", "[comm]\nbackend = [\"mpi\", \"nccl\"]\n",
                           "[[grid]]\noutput.dir = \"a\"\n[[grid]]\noutput.dir = \"b\"\n"}) {
    const auto source = parse_text(text, "x.toml");
    const auto msg = config_error([&] { expand(source); });
    EXPECT_NE(msg.find("applies to the whole run: give it one value"), std::string::npos) << msg;
    EXPECT_EQ(config_error([&] { read_run_config(source); }), msg);
  }
  const auto source = parse_text("[run]\nthreads = 3\ndevice = \"cpu\"\n[sweep]\nranks_per_experiment = 2\n"
                                 "[comm]\ntimeout_s = 7\n[output]\ndir = \"d\"\n",
                                 "x.toml");
  const auto run = read_run_config(source);
  EXPECT_EQ(run.threads, 3);
  EXPECT_EQ(run.device, "cpu");
  EXPECT_EQ(run.ranks_per_experiment, 2);
  EXPECT_EQ(run.comm_timeout_s, 7.0);
  EXPECT_EQ(run.output_dir, "d");
  EXPECT_EQ(expand(source)[0].resolved_text().find("threads"), std::string::npos);
  EXPECT_NE(config_error([] { read_run_config(parse_text("[output]\ndir = \"\"\n", "x.toml")); }).find("output.dir must not be empty"),
            std::string::npos);
  EXPECT_NE(config_error([] { read_run_config(parse_text("[run]\ndevice = \"cpu\"\n[comm]\nbackend = \"nccl\"\n", "x.toml")); })
                .find("comm.backend = \"nccl\" needs GPUs"),
            std::string::npos);
}
