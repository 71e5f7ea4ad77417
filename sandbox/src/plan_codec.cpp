// A ChildPlan as bytes: fixed-width numbers in host order (both ends are this machine) and
// length-prefixed strings, a null pointer being the length 0xFFFFFFFF.
#include <cstdint>
#include <cstring>

#include "plan.hpp"

namespace warren::sandbox::detail {

namespace {

constexpr std::uint32_t kNull = 0xFFFFFFFF;
constexpr std::uint32_t kMagic = 0x57504C31;  // "WPL1"

class Writer {
 public:
  template <class T>
  void number(T value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void text(const char* s) {
    if (!s) return number(kNull);
    const auto n = static_cast<std::uint32_t>(std::strlen(s));
    number(n);
    bytes_.append(s, n);
  }
  void steps(const std::vector<FsStep>& steps) {
    number(static_cast<std::uint32_t>(steps.size()));
    for (const FsStep& s : steps) {
      number(static_cast<std::uint32_t>(s.kind));
      text(s.path);
      text(s.source);
      text(s.fstype);
      number(static_cast<std::uint64_t>(s.flags));
      text(s.data);
      number(s.mode);
      number(static_cast<std::uint8_t>(s.optional));
    }
  }
  void strings(const std::vector<char*>& list) {  // null-terminated
    number(static_cast<std::uint32_t>(list.size() - 1));
    for (std::size_t i = 0; i + 1 < list.size(); ++i) text(list[i]);
  }
  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

class Reader {
 public:
  Reader(std::string_view bytes, Strings& strings) : bytes_(bytes), strings_(strings) {}
  bool ok() const { return ok_; }

  template <class T>
  T number() {
    T value{};
    if (bytes_.size() < sizeof value) {
      ok_ = false;
      return value;
    }
    std::memcpy(&value, bytes_.data(), sizeof value);
    bytes_.remove_prefix(sizeof value);
    return value;
  }
  const char* text() {
    const auto n = number<std::uint32_t>();
    if (n == kNull || !ok_) return nullptr;
    if (bytes_.size() < n) {
      ok_ = false;
      return nullptr;
    }
    const char* kept = strings_.keep(std::string(bytes_.substr(0, n)));
    bytes_.remove_prefix(n);
    return kept;
  }
  void steps(std::vector<FsStep>& steps) {
    const auto count = number<std::uint32_t>();
    for (std::uint32_t i = 0; i < count && ok_; ++i) {
      FsStep s{};
      const auto kind = number<std::uint32_t>();
      if (kind > FsStep::WriteFile) ok_ = false;
      s.kind = static_cast<FsStep::Kind>(kind);
      s.path = text();
      s.source = text();
      s.fstype = text();
      s.flags = static_cast<unsigned long>(number<std::uint64_t>());
      s.data = text();
      s.mode = number<unsigned>();
      s.optional = number<std::uint8_t>() != 0;
      if (!s.path) ok_ = false;
      steps.push_back(s);
    }
  }
  void strings(std::vector<char*>& list) {
    const auto count = number<std::uint32_t>();
    for (std::uint32_t i = 0; i < count && ok_; ++i) {
      const char* s = text();
      if (!s) ok_ = false;
      list.push_back(const_cast<char*>(s));
    }
    list.push_back(nullptr);
  }
  bool at_end() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
  Strings& strings_;
  bool ok_ = true;
};

}  // namespace

std::string encode_plan(const ChildPlan& plan) {
  Writer w;
  w.number(kMagic);
  w.text(plan.new_root);
  w.steps(plan.before_pivot);
  w.steps(plan.after_pivot);
  w.text(plan.hostname);
  w.number(static_cast<std::uint32_t>(plan.host_ids));
  w.number(static_cast<std::uint8_t>(plan.loopback_up));
  w.text(plan.workdir);
  w.number(static_cast<std::uint8_t>(plan.terminal));
  w.number(static_cast<std::uint8_t>(plan.recycle));
  w.strings(plan.argv);
  w.strings(plan.envp);
  w.text(plan.search_path);
  w.number(static_cast<std::int32_t>(plan.last_capability));
  w.number(plan.kept_capabilities);
  w.number(static_cast<std::uint32_t>(plan.rlimits.size()));
  for (const RlimitSetting& r : plan.rlimits) {
    w.number(static_cast<std::int32_t>(r.resource));
    w.number(static_cast<std::uint64_t>(r.value.rlim_cur));
    w.number(static_cast<std::uint64_t>(r.value.rlim_max));
  }
  w.number(static_cast<std::uint32_t>(plan.seccomp.len));
  for (unsigned i = 0; i < plan.seccomp.len; ++i) w.number(plan.seccomp.filter[i]);
  return w.take();
}

bool decode_plan(std::string_view bytes, ChildPlan& plan, Strings& strings,
                 std::vector<sock_filter>& filter) {
  Reader r(bytes, strings);
  if (r.number<std::uint32_t>() != kMagic) return false;
  plan.new_root = r.text();
  r.steps(plan.before_pivot);
  r.steps(plan.after_pivot);
  plan.hostname = r.text();
  plan.host_ids = r.number<std::uint32_t>();
  plan.loopback_up = r.number<std::uint8_t>() != 0;
  plan.workdir = r.text();
  plan.terminal = r.number<std::uint8_t>() != 0;
  plan.recycle = r.number<std::uint8_t>() != 0;
  r.strings(plan.argv);
  r.strings(plan.envp);
  plan.search_path = r.text();
  plan.last_capability = r.number<std::int32_t>();
  if (plan.last_capability < 0 || plan.last_capability > 63) return false;
  plan.kept_capabilities = r.number<std::uint64_t>();
  const auto limits = r.number<std::uint32_t>();
  for (std::uint32_t i = 0; i < limits && r.ok(); ++i) {
    RlimitSetting s{};
    s.resource = r.number<std::int32_t>();
    s.value.rlim_cur = r.number<std::uint64_t>();
    s.value.rlim_max = r.number<std::uint64_t>();
    plan.rlimits.push_back(s);
  }
  const auto instructions = r.number<std::uint32_t>();
  if (instructions > 0xFFFF) return false;  // sock_fprog's length is 16 bits
  for (std::uint32_t i = 0; i < instructions && r.ok(); ++i)
    filter.push_back(r.number<sock_filter>());
  plan.seccomp = {static_cast<unsigned short>(filter.size()), filter.data()};
  return r.ok() && r.at_end() && plan.new_root && plan.workdir && plan.argv.size() > 1;
}

}  // namespace warren::sandbox::detail
