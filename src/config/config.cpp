// Config parsing, overrides, validation, sweep expansion and experiment ids (see config.hpp).
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

#include "dne/config/key_spec.hpp"
#include "dne/config/methods.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/hash.hpp"

namespace dne::config {
namespace {

using detail::key_table;
using detail::KeySpec;
using detail::Kind;

const KeySpec* find_key(const std::string& name) {
  for (const auto& k : key_table())
    if (k.name == name) return &k;
  return nullptr;
}

/// The key `name` names, by its name or a former one (KeySpec::former_name: then `source`, when
/// given, records the deprecation once); nullptr when it names none.
const KeySpec* find_key_read(const std::string& name, ConfigSource* source = nullptr) {
  if (const KeySpec* spec = find_key(name)) return spec;
  for (const auto& k : key_table())
    if (!k.former_name.empty() && k.former_name == name) {
      const std::string note = name + " is now " + k.name;
      if (source != nullptr && std::find(source->deprecated.begin(), source->deprecated.end(), note) == source->deprecated.end())
        source->deprecated.push_back(note);
      return &k;
    }
  return nullptr;
}

void merge_deprecations(ConfigSource& into, const ConfigSource& from) {
  for (const auto& note : from.deprecated)
    if (std::find(into.deprecated.begin(), into.deprecated.end(), note) == into.deprecated.end()) into.deprecated.push_back(note);
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
  const KeySpec* spec = find_key_read(key, &source);
  if (spec == nullptr) throw ConfigError(where + ": unknown key '" + key + "' (see `dne run --help-config`)");
  if (source.values.count(spec->name) > 0) {  // TOML sets a key once: a former name and the new one met
    const std::string why = spec->former_name.empty() ? "" : " (" + spec->former_name + " is the former name of " + spec->name + ")";
    throw ConfigError(where + ": " + key + " is set twice" + why + ": keep " + spec->name);
  }
  std::vector<Value> values;
  if (auto arr = node.as_array()) {
    if (arr->empty()) throw ConfigError(where + ": " + key + ": an empty list gives no experiments");
    for (const auto& el : *arr) values.push_back(check_value(*spec, to_value(el, where, key), where));
  } else {
    values.push_back(check_value(*spec, to_value(node, where, key), where));
  }
  source.values[spec->name] = std::move(values);
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
        merge_deprecations(source, one);
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

/// `run`: the run-wide keys' values (resolved text only); without it they are left out. The
/// canonical and pretraining texts name a renamed key by its former name (the ids stay); the
/// resolved text by its name, each section's keys together in table order.
std::string render(const ExperimentConfig& c, Render mode, const RunConfig* run = nullptr) {
  std::vector<std::pair<std::string, std::string>> sections;  // [section] -> its lines, in first-appearance order
  const ExperimentConfig defaults;
  for (const auto& k : key_table()) {
    if (!rendered(k, mode) || (!k.data_source.empty() && k.data_source != c.data.source)) continue;
    if (k.run_wide && run == nullptr) continue;
    const Value value = k.run_wide ? k.get_run(*run) : k.get(c);
    if (k.omitted_at_default && mode != Render::kResolved && format_value(value) == format_value(k.get(defaults)))
      continue;
    const std::string& name = mode != Render::kResolved && !k.former_name.empty() ? k.former_name : k.name;
    const auto dot = name.find('.');
    const std::string sec = name.substr(0, dot);
    auto it = std::find_if(sections.begin(), sections.end(), [&](const auto& s) { return s.first == sec; });
    if (it == sections.end()) it = sections.insert(sections.end(), {sec, ""});
    it->second += name.substr(dot + 1) + " = " + format_value(value) + "\n";
  }
  std::string out;
  for (const auto& [sec, lines] : sections) out += (out.empty() ? "" : "\n") + ("[" + sec + "]\n") + lines;
  return out;
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

const ExperimentConfig& defaults() {
  static const ExperimentConfig kDefaults;  // immutable; thread-safe first construction
  return kDefaults;
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
  const KeySpec* spec = find_key_read(key, &source);
  if (spec == nullptr) throw ConfigError(where + ": unknown key '" + key + "'");
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
  source.values[spec->name] = one.values[spec->name];
  for (auto& grid : source.grids) grid.erase(spec->name);  // an override wins over every grid
  refresh_axes(source);
}

void set_value(ConfigSource& source, const std::string& key, const Value& value) {
  const KeySpec* spec = find_key_read(key, &source);
  if (spec == nullptr) throw ConfigError("unknown key '" + key + "'");
  source.values[spec->name] = {check_value(*spec, value, key)};
  for (auto& grid : source.grids) grid.erase(spec->name);
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
  const KeySpec* spec = find_key_read(key);
  if (spec == nullptr) throw ConfigError("unknown key '" + key + "'");
  return spec->get(config);
}

std::vector<std::string> methods_reading(const std::string& key) {
  const KeySpec* spec = find_key_read(key);
  if (spec == nullptr) throw ConfigError("unknown key '" + key + "'");
  return spec->methods.empty() ? find_key("dne.method")->choices : spec->methods;
}

std::vector<std::string> method_keys(const std::string& method) {
  (void)method_info(method);  // ConfigError naming the methods
  std::vector<std::string> keys;
  for (const auto& k : key_table())
    if (std::find(k.methods.begin(), k.methods.end(), method) != k.methods.end()) keys.push_back(k.name);
  return keys;
}

std::string describe_keys() {
  std::ostringstream out;
  ExperimentConfig defaults;
  const RunConfig run_defaults;
  // Each section's keys together, sections in the order they first appear (the table's order is
  // the canonical text's, where a renamed key keeps its former section).
  std::vector<const KeySpec*> keys;
  for (const auto& k : key_table()) {
    const auto section = k.name.substr(0, k.name.find('.'));
    auto at = std::find_if(keys.begin(), keys.end(), [&](const KeySpec* e) { return e->name.substr(0, e->name.find('.')) == section; });
    while (at != keys.end() && (*at)->name.substr(0, (*at)->name.find('.')) == section) ++at;
    keys.insert(at, &k);
  }
  for (const KeySpec* key : keys) {
    const KeySpec& k = *key;
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
    if (!k.former_name.empty()) out << " [formerly " << k.former_name << ", still read]";
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
