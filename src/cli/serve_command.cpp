// `dne serve`: any FM of the project (built-in CNN, ViT with or without an FM file,
// TorchScript) behind an Open Inference Protocol server (serve/model_server.hpp), for
// `fm.kind = "remote"` experiments and any other OIP client.
//
// The FM is the one `dne run` would build for the config's (single) experiment: [fm], the data's
// image size, and sweep.seeds (the seed initialises built-in random weights), on run.device
// (comm::DeviceChoice, chosen by the rule `dne run` uses). Torch runs
// run.threads intra-op threads (default 1, as a `dne run` rank: the same batch gives the same
// bits). SIGTERM and SIGINT stop the server gracefully (the requests in flight are answered);
// a second signal exits at once with 128 + signal.
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "dne/cli/commands.hpp"
#include "dne/cli/options.hpp"
#include "dne/core/errors.hpp"
#include "dne/core/stop_signal.hpp"
#include "dne/comm/device_choice.hpp"
#include "dne/fm/device_model.hpp"
#include "dne/fm/foundation_model.hpp"
#include "dne/run/device_agreement.hpp"
#include "dne/run/process.hpp"
#include "dne/serve/model_server.hpp"

namespace po = boost::program_options;

namespace dne::cli {
namespace {

/// The FM as the server's callback: images (B, 1, H, W) row-major -> embeddings (B, D), its
/// forwards where `device` says (run.device: a GPU at run.precision through fm::on_device, as a
/// `dne run` rank; the embeddings come back to the host).
serve::ServedModel served_model(const config::ExperimentConfig& c, const comm::DeviceChoice& device) {
  const std::int64_t size = c.data.image_size;
  std::shared_ptr<fm::DifferentiableModel> model = fm::make_model(c.fm, size, static_cast<std::uint64_t>(c.sweep.seed));
  if (device.cuda()) model = fm::on_device(model, device.torch_device(), c.run.precision);
  serve::ServedModel served;
  served.input_shape = {1, size, size};
  served.dim = model->embed_dim();
  served.platform = c.fm.kind == "torchscript" ? "pytorch_torchscript" : "dne_" + c.fm.kind;
  served.embed = [model, size](const std::vector<float>& images, std::int64_t batch) {
    auto x = torch::from_blob(const_cast<float*>(images.data()), {batch, 1, size, size}, torch::kFloat32);  // read only
    const auto z = model->embed(x).to(torch::kCPU, torch::kFloat32).contiguous();  // (B, D) on the host
    return std::vector<float>(z.data_ptr<float>(), z.data_ptr<float>() + z.numel());
  };
  return served;
}

}  // namespace

int command_serve(const std::vector<std::string>& args, const ProcessInfo& process) {
  po::options_description options(
      "dne serve: serve the config's FM over the Open Inference Protocol (KServe V2 REST, with\n"
      "Triton's binary tensor extension) until SIGTERM / SIGINT. docs/remote.md\n"
      "usage: dne serve --config FILE [--set key=value ...] [--port P] [options]");
  serve::ServerOptions o;
  options.add_options()("help,h", "show this help")("config,c", po::value<std::string>(), "TOML config ([data] image_size, [fm], run.threads, run.device, run.precision)")(
      "set,s", po::value<std::vector<std::string>>()->composing(), "override a key, e.g. fm.kind=vit")(
      "host", po::value<std::string>(&o.host)->default_value(o.host), "address to listen on (0.0.0.0: every interface)")(
      "port", po::value<int>(&o.port)->default_value(0), "TCP port; 0 = any free one (the first output line says which)")(
      "model-name", po::value<std::string>(&o.model_name)->default_value(o.model_name), "the model's name in /v2/models/<name>")(
      "model-version", po::value<std::string>(&o.model_version)->default_value(o.model_version), "the version it reports")(
      "max-batch", po::value<std::int64_t>(&o.max_batch)->default_value(o.max_batch), "most images per request (400 above)")(
      "max-request-mb", po::value<double>()->default_value(64.0), "largest request body in MiB (413 above)")(
      "token-env", po::value<std::string>(), "require `Authorization: Bearer $VAR` on /v2/models/* (401 otherwise)")(
      "rate-limit", po::value<double>(&o.rate_limit)->default_value(0.0), "requests per second per client address (429 + Retry-After above); 0 = off")(
      "latency-ms", po::value<double>(&o.latency_ms)->default_value(0.0), "experiments: added to every inference")(
      "failure-rate", po::value<double>(&o.failure_rate)->default_value(0.0), "experiments: share of inferences answered with 500")(
      "max-connections", po::value<std::int64_t>(&o.max_connections)->default_value(o.max_connections),
      "open connections at most (a fast 503 + Retry-After above)")(
      "max-inflight-mb", po::value<double>()->default_value(256.0),
      "request bodies being read or processed at once, in MiB (503 + Retry-After above)")(
      "header-timeout", po::value<double>(&o.header_timeout_s)->default_value(o.header_timeout_s),
      "seconds a new connection has to send its request header")(
      "idle-timeout", po::value<double>(&o.idle_timeout_s)->default_value(o.idle_timeout_s),
      "seconds a kept-alive connection may wait for its next request")(
      "body-stall", po::value<double>(&o.body_stall_s)->default_value(o.body_stall_s),
      "seconds of silence allowed while a body is sent")(
      "min-body-kbps", po::value<double>()->default_value(64.0),
      "KiB/s a body must average after its first --body-stall seconds (408 below)")(
      "max-abs-input", po::value<double>(&o.max_abs_input)->default_value(o.max_abs_input),
      "largest |pixel| accepted (NaN, Inf or larger: 400)")(
      "drain-timeout", po::value<double>(&o.drain_timeout_s)->default_value(o.drain_timeout_s),
      "after SIGTERM, seconds before connections still open are closed")(
      "threads", po::value<int>(&o.threads)->default_value(o.threads), "request workers (requests decoded and answered at once)")(
      "model-workers", po::value<int>(&o.model_workers)->default_value(o.model_workers),
      "forward passes at once (1: one at a time; each uses run.threads Torch threads; same bits either way)")(
      "access-log", po::value<std::string>(&o.access_log), "append one line per request to this file");
  const auto vm = parse_args(args, options);
  if (vm.count("help")) {
    if (process.rank == 0) std::cout << options << "\n";
    return 0;
  }
  if (process.world_size > 1) throw ConfigError("dne serve runs as one process, not under mpirun");
  if (!vm.count("config")) throw ConfigError("dne serve: --config FILE is required (its [fm] and data.image_size say what to serve)");
  const auto source = config_and_overrides(vm);
  const auto c = single_config(source, "dne serve");
  run::say_deprecated_keys(source, process);
  const auto run = config::read_run_config(source);
  if (c.fm.kind == "remote") throw ConfigError("dne serve: fm.kind = \"remote\" is a client; serve cnn, vit or torchscript");
  if (o.port < 0 || o.port > 65535) throw ConfigError("--port " + std::to_string(o.port) + ": not a TCP port (0-65535)");
  if (o.max_batch < 1) throw ConfigError("--max-batch " + std::to_string(o.max_batch) + ": must be at least 1");
  const double mb = vm["max-request-mb"].as<double>();
  if (!(mb > 0.0)) throw ConfigError("--max-request-mb must be positive");
  o.max_request_bytes = static_cast<std::int64_t>(mb * 1024.0 * 1024.0);
  const double inflight = vm["max-inflight-mb"].as<double>();
  if (!(inflight >= mb)) throw ConfigError("--max-inflight-mb must be at least --max-request-mb (" + std::to_string(mb) + ")");
  o.max_body_bytes_total = static_cast<std::int64_t>(inflight * 1024.0 * 1024.0);
  o.min_body_rate = vm["min-body-kbps"].as<double>() * 1024.0;
  if (o.max_connections < 1) throw ConfigError("--max-connections must be at least 1");
  for (const auto& [name, value] : {std::pair<const char*, double>{"--header-timeout", o.header_timeout_s},
                                    {"--idle-timeout", o.idle_timeout_s}, {"--body-stall", o.body_stall_s},
                                    {"--drain-timeout", o.drain_timeout_s}, {"--max-abs-input", o.max_abs_input}})
    if (!(value > 0.0 && value < 1e9)) throw ConfigError(std::string(name) + " must be a positive number");
  if (!(o.min_body_rate >= 0.0)) throw ConfigError("--min-body-kbps must be >= 0");
  if (!(o.failure_rate >= 0.0 && o.failure_rate <= 1.0)) throw ConfigError("--failure-rate must be in [0, 1]");
  if (!(o.latency_ms >= 0.0) || !(o.rate_limit >= 0.0)) throw ConfigError("--latency-ms and --rate-limit must be >= 0");
  if (o.threads < 1) throw ConfigError("--threads must be at least 1");
  if (o.model_workers < 1) throw ConfigError("--model-workers must be at least 1");
  if (vm.count("token-env")) {
    const std::string var = vm["token-env"].as<std::string>();
    const char* token = std::getenv(var.c_str());
    if (token == nullptr || *token == '\0') throw ConfigError("--token-env " + var + ": that environment variable is not set");
    o.token = token;
  }
  torch::set_num_threads(run.threads > 0 ? static_cast<int>(run.threads) : 1);
  const auto device = run::agreed_device_choice(run, {c}, process);  // run.device, run.precision

  serve::ModelServer server(served_model(c, device), o);
  const int port = server.bind();
  const auto meta = server.metadata();
  std::cout << "dne serve: listening on http://" << o.host << ":" << port << " model " << o.model_name << " version "
            << o.model_version << " input images " << api::shape_text(meta.inputs.front().shape) << " FP32 output embeddings "
            << api::shape_text(meta.outputs.front().shape) << " FP32 on " << device.description() << std::endl;

  // SIGTERM / SIGINT: a watcher sees the recorded signal and stops the server (core/stop_signal.hpp).
  const StopOnSignal stop_on_signal;
  std::atomic<bool> served{false};
  std::thread watcher([&server, &served] {
    while (!served.load()) {
      if (const int s = stop_signal(); s != 0) {
        std::cerr << "dne serve: " << signal_name(s)
                  << " received; answering the requests in flight, then stopping (again to exit at once)" << std::endl;
        server.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  server.serve();
  served.store(true);
  watcher.join();
  const auto n = server.counters();
  std::cout << "dne serve: stopped after " << n.requests << " requests (" << n.images << " images, " << n.errors
            << " errors)" << std::endl;
  return 0;
}

}  // namespace dne::cli
