// The adversarial VAE (see adversarial_vae.hpp).
#include "dne/vae/adversarial_vae.hpp"

#include <cmath>

#include "dne/core/errors.hpp"
#include "dne/core/random.hpp"
#include "dne/fm/vit_encoder.hpp"

namespace dne::vae {

std::vector<std::int64_t> hidden_widths(const std::string& text) {
  std::vector<std::int64_t> widths;
  for (const double w : config::number_list(text, "vae.hidden")) {
    if (!(w >= 1.0 && w <= 65536.0) || w != std::floor(w))  // in range before any cast
      throw ConfigError("vae.hidden: \"" + text + "\": every width must be a whole number in [1, 65536]");
    widths.push_back(static_cast<std::int64_t>(w));
  }
  return widths;
}

namespace {

// Stream steps of kModelInit for the VAE's modules (the ViT uses 0 and 1).
constexpr std::uint32_t kVaeInitStep = 20, kHeadInitStep = 21;
// Index of the batch-order stream (DNE's editors use index 0 of the same purpose).
constexpr std::uint32_t kVaeOrderIndex = 1;

torch::nn::Sequential mlp(std::int64_t in, const std::vector<std::int64_t>& widths) {
  torch::nn::Sequential net;
  for (const auto w : widths) {
    net->push_back(torch::nn::Linear(in, w));
    net->push_back(torch::nn::ReLU());
    in = w;
  }
  return net;
}

}  // namespace

class AdversarialVaeImpl : public torch::nn::Module {
 public:
  AdversarialVaeImpl(std::int64_t input_dim, std::vector<Attribute> attributes, const VaeOptions& o)
      : options(o), attributes(std::move(attributes)) {
    if (o.latent < 1 || o.hidden.empty() || o.epochs < 1 || o.batch_size < 1 || o.adversary_steps < 0)
      throw ConfigError("vae: latent, hidden, epochs and batch_size must be positive");
    if (o.adversary_objective != "confusion" && o.adversary_objective != "neg_loss")
      throw ConfigError("vae.adversary_objective must be \"confusion\" or \"neg_loss\", got \"" + o.adversary_objective + "\"");
    const std::int64_t last = o.hidden.back();
    encoder = register_module("encoder", mlp(input_dim, o.hidden));
    to_mean = register_module("to_mean", torch::nn::Linear(last, o.latent));
    to_logvar = register_module("to_logvar", torch::nn::Linear(last, o.latent));
    std::vector<std::int64_t> back(o.hidden.rbegin(), o.hidden.rend());
    decoder = register_module("decoder", mlp(o.latent, back));
    to_input = register_module("to_input", torch::nn::Linear(back.back(), input_dim));
    disease_head = register_module("disease_head", torch::nn::Linear(o.latent, 1));
    fm::initialise_vit_weights(*this, o.seed, kVaeInitStep, 0);
    for (std::size_t a = 0; a < this->attributes.size(); ++a) {
      heads.push_back(torch::nn::Linear(o.latent, 1));
      fm::initialise_vit_weights(*heads.back(), o.seed + 7919 * (a + 1), kHeadInitStep, 0);
    }
    trace.adversary_loss.assign(this->attributes.size(), {});
    trace.adversary_accuracy.assign(this->attributes.size(), {});
  }

  /// Standardised x (N, D) -> (mu, logvar), each (N, L).
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& xs) {
    const auto h = encoder->forward(xs);
    return {to_mean(h), to_logvar(h)};
  }
  torch::Tensor decode(const torch::Tensor& z) { return to_input(decoder->forward(z)); }
  torch::Tensor standardise(const torch::Tensor& x) const { return (x - x_mean) / x_std; }

  /// The head of attribute a on mu: (N,) logit (binary) or standardised prediction (continuous).
  torch::Tensor head(std::size_t a, const torch::Tensor& mu) { return heads[a]->forward(mu).squeeze(1); }

  /// The heads' own loss for attribute a: logistic loss or squared error on the standardised value.
  torch::Tensor adversary_loss(std::size_t a, const torch::Tensor& out, const torch::Tensor& target) const {
    if (attributes[a].binary) return torch::binary_cross_entropy_with_logits(out, target);
    return torch::mse_loss(out, target);
  }

  /// What the encoder minimises for attribute a.
  torch::Tensor encoder_objective(std::size_t a, const torch::Tensor& out, const torch::Tensor& target) const {
    if (options.adversary_objective == "neg_loss") return -adversary_loss(a, out, target);
    if (attributes[a].binary) return torch::binary_cross_entropy_with_logits(out, torch::full_like(out, 0.5));
    return out.pow(2).mean();  // standardised targets have mean 0: predict the mean, nothing more
  }

  /// Targets of attribute a for rows `index`: 0/1, or standardised.
  torch::Tensor target(std::size_t a, const torch::Tensor& index) const {
    return targets[a].index_select(0, index);
  }

  VaeOptions options;
  std::vector<Attribute> attributes;
  std::vector<torch::Tensor> targets;  // (N,) per attribute, continuous ones standardised
  torch::Tensor x_mean, x_std;         // (D,)
  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  torch::nn::Linear to_mean{nullptr}, to_logvar{nullptr}, to_input{nullptr}, disease_head{nullptr};
  std::vector<torch::nn::Linear> heads;
  VaeTrace trace;
};

AdversarialVae::AdversarialVae(std::int64_t input_dim, std::vector<Attribute> attributes, const VaeOptions& options)
    : impl_(std::make_unique<AdversarialVaeImpl>(input_dim, std::move(attributes), options)) {}
AdversarialVae::~AdversarialVae() = default;
AdversarialVae::AdversarialVae(AdversarialVae&&) noexcept = default;
AdversarialVae& AdversarialVae::operator=(AdversarialVae&&) noexcept = default;

const VaeTrace& AdversarialVae::trace() const { return impl_->trace; }

std::vector<torch::Tensor> AdversarialVae::encoder_parameters() const {
  std::vector<torch::Tensor> out;
  for (auto& p : impl_->encoder->parameters()) out.push_back(p);
  for (auto& p : impl_->to_mean->parameters()) out.push_back(p);
  return out;
}

torch::Tensor AdversarialVae::encode_mean(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  return impl_->encode(impl_->standardise(x)).first;
}

double AdversarialVae::reconstruction_error(const torch::Tensor& x) const {
  torch::NoGradGuard no_grad;
  const auto xs = impl_->standardise(x);
  return torch::mse_loss(impl_->decode(impl_->encode(xs).first), xs).item<double>();
}

torch::Tensor AdversarialVae::adversarial_term(const torch::Tensor& x, const std::vector<torch::Tensor>& targets) const {
  auto& m = *impl_;
  const auto mu = m.encode(m.standardise(x)).first;  // not detached: this is the point
  auto term = torch::zeros({}, torch::kFloat32);
  for (std::size_t a = 0; a < m.attributes.size(); ++a)
    term = term + m.attributes[a].weight * m.encoder_objective(a, m.head(a, mu), targets[a]);
  return term;
}

void AdversarialVae::train(const torch::Tensor& x, const torch::Tensor& disease) {
  auto& m = *impl_;
  const auto& o = m.options;
  const std::int64_t n = x.size(0);
  if (x.dim() != 2 || n < 2) throw DataError("vae: embeddings must be (N, D) with N >= 2");
  if (!torch::isfinite(x).all().item<bool>()) throw DataError("vae: the embeddings are not finite");
  if (o.disease_weight > 0.0 && (!disease.defined() || disease.size(0) != n))
    throw DataError("vae: vae.disease_weight > 0 needs a disease label per training row");
  m.x_mean = x.mean(0);
  m.x_std = x.std(0, /*unbiased=*/false).clamp_min(1e-6);
  m.targets.clear();
  for (const auto& a : m.attributes) {
    if (a.values.size(0) != n) throw DataError("vae: attribute '" + a.name + "' has a value count unlike the rows");
    auto t = a.values.to(torch::kFloat32);
    if (!a.binary) t = (t - t.mean()) / t.std(/*unbiased=*/false).clamp_min(1e-6);
    m.targets.push_back(t);
  }
  const auto xs = m.standardise(x);
  const auto y = disease.defined() ? disease.to(torch::kFloat32) : torch::Tensor();

  std::vector<torch::Tensor> model_params;
  for (auto& p : m.parameters()) model_params.push_back(p);
  std::vector<torch::Tensor> head_params;
  for (auto& h : m.heads)
    for (auto& p : h->parameters()) head_params.push_back(p);
  torch::optim::Adam model_opt(model_params, torch::optim::AdamOptions(o.lr));
  std::unique_ptr<torch::optim::Adam> head_opt;
  if (!head_params.empty()) head_opt = std::make_unique<torch::optim::Adam>(head_params, torch::optim::AdamOptions(o.lr));

  std::uint32_t step = 0;
  for (std::int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    CounterStream order_stream(o.seed, StreamPurpose::kBatchOrder, static_cast<std::uint32_t>(epoch), kVaeOrderIndex);
    const auto order = random_permutation(n, order_stream);
    double sum_loss = 0, sum_rec = 0, sum_kl = 0, sum_adv = 0;
    std::vector<double> sum_heads(m.attributes.size(), 0.0), sum_correct(m.attributes.size(), 0.0);
    std::int64_t batches = 0;
    for (std::int64_t start = 0; start < n; start += o.batch_size, ++step, ++batches) {
      const std::int64_t end = std::min(n, start + o.batch_size);
      const auto index = torch::tensor(std::vector<std::int64_t>(order.begin() + start, order.begin() + end), torch::kInt64);
      const auto xb = xs.index_select(0, index);
      std::vector<torch::Tensor> tb;
      for (std::size_t a = 0; a < m.attributes.size(); ++a) tb.push_back(m.target(a, index));

      // 1. The heads learn to read the attributes from the current code (encoder frozen).
      for (std::int64_t k = 0; k < o.adversary_steps && head_opt; ++k) {
        const auto mu = [&] {
          torch::NoGradGuard no_grad;
          return m.encode(xb).first;
        }();
        head_opt->zero_grad();
        auto loss = torch::zeros({}, torch::kFloat32);
        for (std::size_t a = 0; a < m.attributes.size(); ++a) {
          const auto out = m.head(a, mu);
          const auto l = m.adversary_loss(a, out, tb[a]);
          if (k + 1 == o.adversary_steps) {
            sum_heads[a] += l.item<double>();
            if (m.attributes[a].binary)  // the head's output is a logit: class 1 when > 0
              sum_correct[a] += ((out.detach().reshape({-1}) > 0).to(torch::kFloat32) == tb[a]).sum().item<double>();
          }
          loss = loss + l;
        }
        loss.backward();
        head_opt->step();
      }

      // 2. The encoder/decoder step, the heads' gradient flowing into the encoder.
      model_opt.zero_grad();
      const auto [mu, logvar] = m.encode(xb);
      std::vector<float> noise(static_cast<std::size_t>(mu.numel()));
      CounterStream(o.seed, StreamPurpose::kLatentNoise, step, 0).fill_normal(noise.data(), noise.size());
      const auto eps = torch::from_blob(noise.data(), mu.sizes(), torch::kFloat32).clone();
      const auto z = mu + torch::exp(0.5 * logvar) * eps;
      const auto rec = torch::mse_loss(m.decode(z), xb);
      const auto kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean() / static_cast<double>(x.size(1));
      auto adv = torch::zeros({}, torch::kFloat32);
      for (std::size_t a = 0; a < m.attributes.size(); ++a)
        adv = adv + m.attributes[a].weight * m.encoder_objective(a, m.head(a, mu), tb[a]);
      auto loss = rec + o.beta * kl + o.adversary_weight * adv;
      if (o.disease_weight > 0.0)
        loss = loss + o.disease_weight * torch::binary_cross_entropy_with_logits(
                                             m.disease_head->forward(mu).squeeze(1), y.index_select(0, index));
      if (!torch::isfinite(loss).item<bool>())
        throw NumericError("vae: the loss became " + std::to_string(loss.item<double>()) + " at epoch " +
                           std::to_string(epoch));
      loss.backward();
      for (auto& h : m.heads) h->zero_grad();  // the heads move only in their own step
      model_opt.step();
      sum_loss += loss.item<double>();
      sum_rec += rec.item<double>();
      sum_kl += kl.item<double>();
      sum_adv += adv.item<double>();
    }
    const auto mean = [batches](double s) { return s / static_cast<double>(batches); };
    m.trace.loss.push_back(mean(sum_loss));
    m.trace.reconstruction.push_back(mean(sum_rec));
    m.trace.kl.push_back(mean(sum_kl));
    m.trace.adversarial_term.push_back(mean(sum_adv));
    for (std::size_t a = 0; a < m.attributes.size(); ++a) {
      m.trace.adversary_loss[a].push_back(mean(sum_heads[a]));
      m.trace.adversary_accuracy[a].push_back(m.attributes[a].binary ? sum_correct[a] / static_cast<double>(n)
                                                                     : std::nan(""));
    }
  }
}

}  // namespace dne::vae
