// Harness overhead per trial (setup, grading, recording; the task's own commands excluded), and
// 200 trials of a trivial task at concurrency 32 with no failure the harness caused; and the same
// overhead for trials on a cached task image (needs root and buildah), beside the first in one run.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "../tests/image/mini_root.hpp"
#include "warren/eval/eval.hpp"
#include "warren/image/image.hpp"

namespace fs = std::filesystem;
using namespace warren;
using namespace warren::orchestrator;

namespace {

// A suite of `count` copies of a trivial Terminal-Bench task (write a file; one test checks it).
fs::path trivial_suite(const fs::path& root, int count) {
  for (int i = 0; i < count; ++i) {
    const fs::path d = root / "suite" / ("trivial-" + std::to_string(1000 + i));
    fs::create_directories(d / "tests");
    std::ofstream(d / "task.yaml")
        << "instruction: Write ok to /app/out.txt.\nmax_agent_timeout_sec: 60\n";
    std::ofstream(d / "Dockerfile") << "FROM python:3.13\nWORKDIR /app\n";
    std::ofstream(d / "solution.sh") << "echo ok > /app/out.txt\n";
    std::ofstream(d / "run-tests.sh")
        << "python3 -m pytest -rA -p no:cacheprovider $TEST_DIR/test_outputs.py\n";
    std::ofstream(d / "tests" / "test_outputs.py")
        << "def test_out():\n    assert open('/app/out.txt').read() == 'ok\\n'\n";
  }
  return root / "suite";
}

// A suite of `count` copies of a trivial Harbor task whose Dockerfile needs a build (a RUN): one
// image serves them all. The base is a small root of this host's busybox and bash, imported.
fs::path image_suite(const fs::path& root, int count) {
  for (int i = 0; i < count; ++i) {
    const fs::path d = root / "suite" / ("on-image-" + std::to_string(1000 + i));
    fs::create_directories(d / "environment");
    fs::create_directories(d / "solution");
    fs::create_directories(d / "tests");
    std::ofstream(d / "task.toml") << "[agent]\ntimeout_sec = 60.0\n";
    std::ofstream(d / "instruction.md") << "Write ok to /app/out.txt.\n";
    std::ofstream(d / "environment" / "Dockerfile")
        << "FROM local/mini:1\nRUN mkdir -p /app\nWORKDIR /app\n";
    std::ofstream(d / "solution" / "solve.sh") << "echo ok > /app/out.txt\n";
    std::ofstream(d / "tests" / "test.sh") << "[ \"$(cat /app/out.txt)\" = ok ] && echo 1 > "
                                              "/logs/verifier/reward.txt\n";
  }
  return root / "suite";
}

void run_trials(benchmark::State& state, bool on_image) {
  const int trials = static_cast<int>(state.range(0)),
            concurrency = static_cast<int>(state.range(1));
  const fs::path root = fs::temp_directory_path() /
                        ("warren-eval-bench-" + std::to_string(getpid()) + (on_image ? "-i" : ""));
  fs::remove_all(root);
  fs::create_directories(root);
  fs::permissions(root, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const std::string images = (root / "images").string();
  if (on_image) {
    auto store = image::Store::open(images);
    if (!store || !warren::testing::make_mini_root(root / "mini") ||
        !store->import("local/mini:1", (root / "mini").string())) {
      state.SkipWithError("no image store here (root and buildah are needed)");
      return;
    }
  }
  const fs::path suite = on_image ? image_suite(root, trials) : trivial_suite(root, trials);
  if (on_image) {  // built once before the timing: the figure is for a cached image
    std::vector<eval::Task> tasks = *eval::load_suite(suite.string());
    std::vector<eval::Task*> first{&tasks.front()};
    eval::EvalSettings settings;
    settings.images = images;
    eval::prepare_images(first, settings, nullptr);
  }
  for (auto _ : state) {
    auto store = std::move(*storage::Store::open(root / "state" / "warren.db"));
    Config config = *Config::load();
    sandbox::Runtime runtime;
    eval::EvalOptions o;
    o.suite = suite.string();
    o.concurrency = concurrency;
    o.settings.workspaces = (root / "state" / "trials").string();
    o.settings.images = images;
    boost::asio::io_context io;
    std::optional<Result<eval::EvalResult>> result;
    boost::asio::co_spawn(io, eval::run_eval(o, runtime, *store, config, nullptr),
                          [&](std::exception_ptr e, Result<eval::EvalResult> r) {
                            if (e) std::rethrow_exception(e);
                            result = std::move(r);
                          });
    io.run();
    if (!result || !*result) {
      state.SkipWithError("the eval failed");
      break;
    }
    std::vector<double> harness;
    int resolved = 0;
    for (const auto& t : (*result)->trials) {
      harness.push_back(t.harness_ms);
      resolved += t.resolved ? 1 : 0;
    }
    std::sort(harness.begin(), harness.end());
    state.counters["harness_p50_ms"] = harness[harness.size() / 2];
    state.counters["harness_p90_ms"] = harness[harness.size() * 9 / 10];
    state.counters["resolved"] = resolved;
    state.counters["failed"] = static_cast<double>(harness.size()) - resolved;
  }
  if (on_image) (void)image::Store::open(images)->prune(true);
  fs::remove_all(root);
}

void BM_EvalTrivialTrials(benchmark::State& state) {
  run_trials(state, false);
}
void BM_EvalTrialsOnACachedImage(benchmark::State& state) {
  run_trials(state, true);
}

// {trials, concurrency}: one at a time (the harness alone), and 200 at concurrency 32.
BENCHMARK(BM_EvalTrivialTrials)
    ->Args({20, 1})
    ->Args({200, 32})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_EvalTrialsOnACachedImage)
    ->Args({20, 1})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
