// `dne data import` (see data_command.hpp): parses the options with Boost.Program_options into
// data::ImportOptions, runs the import on rank 0 and prints its summary. Every option error is a
// dne::ConfigError naming the option.
#include "dne/cli/data_command.hpp"

#include <boost/program_options.hpp>
#include <iostream>
#include <limits>

#include "dne/core/errors.hpp"
#include "dne/data/importers.hpp"

namespace po = boost::program_options;

namespace dne::cli {
namespace {

const char* kDataUsage =
    "usage: dne data <subcommand> [options]\n"
    "subcommands:\n"
    "  import   write a manifest CSV from CheXpert, MIMIC-CXR-JPG or NIH ChestX-ray14 (see docs/datasets.md)\n"
    "Every subcommand takes --help.\n";

std::uint64_t parse_seed(const std::string& text) {
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  try {
    if (digits) return std::stoull(text);
  } catch (const std::out_of_range&) {
  }
  throw ConfigError("--seed '" + text + "': expected a whole number in [0, 2^64)");
}

int command_data_import(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options(
      "dne data import: write a manifest CSV (path,split,sex,label,patient,age,view[,sa]) from a\n"
      "chest X-ray data set in its published layout (docs/datasets.md)\n"
      "usage: dne data import --format chexpert|mimic-cxr|nih --root DIR --task NAME --out manifest.csv [options]");
  options.add_options()("help,h", "show this help")(
      "format", po::value<std::string>(), "chexpert | mimic-cxr | nih")(
      "root", po::value<std::string>(), "the data set's folder")(
      "task", po::value<std::string>(), "the finding that is the label, e.g. \"Pleural Effusion\"")(
      "out,o", po::value<std::string>(), "the manifest CSV to write")(
      "uncertain", po::value<std::string>()->default_value("drop"), "-1 labels (CheXpert, MIMIC): zero | one | drop")(
      "blank", po::value<std::string>()->default_value("zero"), "blank labels (not mentioned): zero | drop")(
      "views", po::value<std::string>()->default_value("frontal"), "frontal (PA and AP only) | all")(
      "sa", po::value<std::string>()->default_value("sex"), "sensitive attribute: sex | age:T | column:NAME=VALUE")(
      "split", po::value<std::string>()->default_value("patient"), "patient | official")(
      "val-fraction", po::value<double>(), "share of patients in val (default 0.1)")(
      "test-fraction", po::value<double>(), "share of patients in test (default 0.2; --split patient only)")(
      "seed", po::value<std::string>()->default_value("0"), "seed of the patient permutation")(
      "patients", po::value<std::string>(), "MIMIC only: MIMIC-IV patients.csv[.gz] (default: searched under --root)")(
      "skip-missing", po::bool_switch(), "drop rows whose image file is missing instead of failing");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string("dne data import: ") + e.what());
  }
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  for (const char* required : {"format", "root", "task", "out"})
    if (!vm.count(required)) throw ConfigError(std::string("dne data import: --") + required + " is required");

  data::ImportOptions import;
  import.format = data::parse_dataset_format(vm["format"].as<std::string>());
  import.root = vm["root"].as<std::string>();
  import.task = vm["task"].as<std::string>();
  import.out = vm["out"].as<std::string>();
  import.uncertain = data::parse_uncertain_labels(vm["uncertain"].as<std::string>());
  import.blank = data::parse_blank_labels(vm["blank"].as<std::string>());
  import.views = data::parse_view_selection(vm["views"].as<std::string>());
  import.sa = data::parse_sensitive_attribute(vm["sa"].as<std::string>());
  import.split = data::parse_split_method(vm["split"].as<std::string>());
  if (vm.count("val-fraction")) import.val_fraction = vm["val-fraction"].as<double>();
  if (vm.count("test-fraction")) import.test_fraction = vm["test-fraction"].as<double>();
  import.seed = parse_seed(vm["seed"].as<std::string>());
  if (vm.count("patients")) import.patients_file = vm["patients"].as<std::string>();
  import.skip_missing = vm["skip-missing"].as<bool>();

  if (process.rank != 0) return 0;  // one writer; the other ranks of an mpirun have nothing to do
  const auto summary = data::run_import(import);
  std::cout << data::describe_import(summary, import.out);
  if (import.sa.kind != data::SensitiveAttribute::Kind::kSex)  // the run reads `sex` unless told otherwise
    std::cout << "  the attribute is in column 'sa': run with --set data.sa_column=sa\n";
  std::cout << std::flush;
  return 0;
}

}  // namespace

int command_data(const std::vector<std::string>& args, const ProcessInfo& process) {
  if (args.empty()) throw ConfigError("dne data: give a subcommand: import (see `dne data --help`)");
  if (args.front() == "--help" || args.front() == "-h") {
    if (process.rank == 0) std::cout << kDataUsage;
    return 0;
  }
  if (args.front() == "import") return command_data_import({args.begin() + 1, args.end()}, process);
  throw ConfigError("dne data: unknown subcommand '" + args.front() + "' (known: import)");
}

}  // namespace dne::cli
