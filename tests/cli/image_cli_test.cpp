// `warren image` and `warren eval` on tasks whose Dockerfile needs a build, as a user runs them:
// a base image imported (tests reach no registry), the task's image built once by buildah and
// cached, every trial started on it, graded in the root the agent left. Needs root (CI runs as
// root).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "../image/mini_root.hpp"
#include "../sandbox/host_probe.hpp"
#include "cli_util.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class ImageCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    state = fs::temp_directory_path() / ("warren-image-cli-" + std::to_string(getpid()));
    fs::remove_all(state);
    fs::create_directories(state);
    images = (state / "images").string();
  }
  void TearDown() override {
    if (state.empty()) return;
    (void)image("prune --bases");
    (void)sandbox::remove_workspace(state.string());
  }
  Outcome image(const std::string& args) const {
    return warren_via("WARREN_IMAGES=" + images + " " + WARREN_BINARY + " image " + args);
  }
  // A Harbor task whose Dockerfile needs a build: RUN, then the context's file, WORKDIR and ENV.
  // The solution writes /app/answer from all three and serves it over HTTP on localhost; the
  // reward is 1 when the tests, run where the agent ran, get it from that server.
  fs::path harbor_task(const std::string& name) const {
    const fs::path task = state / "suite" / name;
    write(task / "task.toml",
          "version = \"1.0\"\n[agent]\ntimeout_sec = 60.0\n"
          "[verifier]\ntimeout_sec = 30.0\n");
    write(task / "instruction.md", "Write /app/answer.\n");
    write(task / "environment" / "Dockerfile",
          "FROM local/mini:1\nRUN mkdir -p /app && echo base > /app/seed\nWORKDIR /app\n"
          "COPY data.txt /app/data.txt\nENV TASK_MODE=built\n");
    write(task / "environment" / "data.txt", "from the context\n");
    write(task / "solution" / "solve.sh",
          "#!/bin/bash\ncat seed data.txt > /app/answer; echo \"$TASK_MODE\" >> /app/answer\n"
          "httpd -p 127.0.0.1:8080 -h /app\n");
    write(task / "tests" / "test.sh",
          "#!/bin/bash\nexpected=$(printf 'base\\nfrom the context\\nbuilt')\n"
          "if [ \"$(wget -qO- http://localhost:8080/answer)\" = \"$expected\" ]; then echo 1; else "
          "echo 0;"
          " fi"
          " > /logs/verifier/reward.txt\n");
    return task;
  }
  fs::path state;
  std::string images;
};

TEST_F(ImageCli, ATaskRunsOnTheImageItsDockerfileBuildsOnceForEveryTrial) {
  ASSERT_TRUE(make_mini_root(state / "mini"));
  auto imported =
      image("import local/mini:1 " + (state / "mini").string() + " --workdir /srv --json");
  ASSERT_EQ(imported.status, 0) << imported.err;
  EXPECT_EQ(Json::parse(imported.out)["name"], "local/mini:1");
  EXPECT_EQ(Json::parse(imported.out)["workdir"], "/srv");  // as t-bench's bases have /app
  harbor_task("on-image");
  harbor_task("same-image");  // the same Dockerfile and context: one build serves both
  // A Dockerfile that needs no build runs on its base all the same, once the base is here: the
  // image's busybox, not the host's python; the COPY done by the build.
  const fs::path plain = harbor_task("plain");
  write(plain / "environment" / "Dockerfile",
        "FROM local/mini:1\nWORKDIR /app\nCOPY data.txt /app/data.txt\n");
  write(plain / "solution" / "solve.sh", "#!/bin/bash\ncat data.txt > /app/answer\n");
  write(plain / "tests" / "test.sh",
        "#!/bin/bash\nif [ -x /bin/busybox ] && [ ! -e /usr/bin/python3 ] && "
        "[ \"$(cat /app/answer)\" = 'from the context' ]; then echo 1; else echo 0; fi"
        " > /logs/verifier/reward.txt\n");
  const std::string suite = (state / "suite").string();
  const std::string db = " --db " + (state / "w.db").string() + " --images " + images;

  auto oracle = warren("eval " + suite + " --agent oracle --json" + db);
  ASSERT_EQ(oracle.status, 0) << oracle.err;
  const Json report = Json::parse(oracle.out);
  EXPECT_EQ(report["resolved"], 3) << oracle.out;
  EXPECT_EQ(report["never_ran"], 0);
  // One build for the two tasks that share it, its log named, and one for the plain task.
  std::size_t builds = 0;
  for (std::size_t at = oracle.err.find("building the image of"); at != std::string::npos;
       at = oracle.err.find("building the image of", at + 1))
    ++builds;
  EXPECT_EQ(builds, 2u) << oracle.err;

  auto listed = image("list --json");
  ASSERT_EQ(listed.status, 0) << listed.err;
  const Json all = Json::parse(listed.out);
  ASSERT_EQ(all.size(), 3u) << listed.out;
  // The shared image's layers: the image with a seed in one of them.
  std::vector<std::string> layers;
  auto in_layers = [](const std::vector<std::string>& folders, const std::string& path) {
    for (const std::string& folder : folders)
      if (fs::exists(fs::path(folder) / path)) return true;
    return false;
  };
  for (const Json& i : all) {
    if (i["base"].get<bool>()) continue;
    EXPECT_EQ(i["workdir"], "/app");
    if (in_layers(i["layers"], "app/seed")) layers = i["layers"];
  }
  ASSERT_FALSE(layers.empty()) << listed.out;
  // The image is never written: the solution's answer lived in the trial's own layer.
  EXPECT_FALSE(in_layers(layers, "app/answer"));
  // Nothing of the trials is left: no folder, no mount.
  EXPECT_TRUE(fs::is_empty(state / "workspaces" / "w.db")) << "trial folders left behind";
  EXPECT_EQ(slurp("/proc/self/mountinfo").find((state / "workspaces").string()), std::string::npos);

  // nop resolves nothing, from the cache: no build this time.
  auto nop = warren("eval " + suite + " --agent nop --json" + db);
  EXPECT_EQ(nop.status, 0) << nop.err;
  EXPECT_EQ(Json::parse(nop.out)["resolved"], 0);
  EXPECT_EQ(nop.err.find("building the image of"), std::string::npos) << nop.err;

  auto text = image("list");
  EXPECT_NE(text.out.find("built    warren/build-"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("base     local/mini:1"), std::string::npos) << text.out;
  auto pruned = image("prune --json");
  ASSERT_EQ(pruned.status, 0) << pruned.err;
  EXPECT_EQ(Json::parse(pruned.out)["removed"].size(), 2u);
  EXPECT_FALSE(fs::exists(layers.front())) << "the built image's own layer is left";
}

// Images are built while the trials of tasks that need none already run: the task with nothing to
// build is graded long before the slow build ends (a RUN of several seconds against a trial of
// well under one), then the built task's trial runs; a build that fails leaves its task not run,
// its reason in the report.
TEST_F(ImageCli, TrialsOfReadyTasksRunWhileImagesAreBuilt) {
  ASSERT_TRUE(make_mini_root(state / "mini"));
  ASSERT_EQ(image("import local/mini:1 " + (state / "mini").string()).status, 0);
  const fs::path slow = harbor_task("a-slow");
  write(slow / "environment" / "Dockerfile",
        "FROM local/mini:1\nRUN sleep 6 && mkdir -p /app && echo base > /app/seed\nWORKDIR /app\n"
        "COPY data.txt /app/data.txt\nENV TASK_MODE=built\n");
  const fs::path broken = harbor_task("c-broken");
  write(broken / "environment" / "Dockerfile", "FROM local/mini:1\nRUN exit 3\n");
  const fs::path ready = state / "suite" / "b-ready";  // no Dockerfile: the host's system view
  write(ready / "task.toml", "[agent]\ntimeout_sec = 60.0\n[verifier]\ntimeout_sec = 30.0\n");
  write(ready / "instruction.md", "Write 42 into answer.txt.\n");
  write(ready / "solution" / "solve.sh", "#!/bin/bash\necho 42 > answer.txt\n");
  write(ready / "tests" / "test.sh",
        "#!/bin/bash\n[ \"$(cat answer.txt)\" = 42 ] && echo 1 > /logs/verifier/reward.txt\n");
  const std::string db = " --db " + (state / "w.db").string() + " --images " + images;

  auto ran = warren("eval " + (state / "suite").string() + " --agent oracle --concurrency 1" + db);
  EXPECT_EQ(ran.status, 1) << ran.err;  // a trial could not run
  const std::size_t ready_graded = ran.err.find("b-ready #0: resolved");
  const std::size_t slow_built = ran.err.find("built the image of a-slow");
  ASSERT_NE(ready_graded, std::string::npos) << ran.err;
  ASSERT_NE(slow_built, std::string::npos) << ran.err;
  EXPECT_LT(ready_graded, slow_built) << ran.err;
  EXPECT_NE(ran.err.find("a-slow #0: resolved"), std::string::npos) << ran.err;
  EXPECT_NE(ran.err.find("c-broken #0: environment_error"), std::string::npos) << ran.err;

  auto report = warren("report 1 --json --db " + (state / "w.db").string());
  ASSERT_EQ(report.status, 0) << report.err;
  int seen = 0;
  const Json tasks = Json::parse(report.out)["tasks"];
  for (const Json& task : tasks)
    if (task["name"] == "c-broken" && ++seen) {
      EXPECT_TRUE(
          task["load_error"].get<std::string>().starts_with("c-broken: the image build failed ("))
          << task;
    }
  EXPECT_EQ(seen, 1) << report.out;
}

// A Harbor task whose docker-compose.yaml runs two more services: each built from its own
// Dockerfile, a sandbox of its own on the trial's private network, both serving on port 8000 at
// addresses of their own, one with the compose file's command and a healthcheck the agent waits
// for, the other with its image's CMD. The agent reaches them by name (and through the compose
// file's environment), and the tests, run once the agent has ended, still do.
TEST_F(ImageCli, ComposeServicesRunBesideTheAgentOnAPrivateNetwork) {
  ASSERT_TRUE(make_mini_root(state / "mini"));
  ASSERT_EQ(image("import local/mini:1 " + (state / "mini").string()).status, 0);
  const fs::path task = harbor_task("compose");
  const fs::path env = task / "environment";
  write(env / "Dockerfile", "FROM local/mini:1\nWORKDIR /app\n");
  write(
      env / "docker-compose.yaml",
      "services:\n"
      "  main:\n"
      "    build:\n      context: .\n"
      "    command: [\"sh\", \"-c\", \"sleep infinity\"]\n"
      "    environment:\n      - API_URL=http://api:8000\n      - LOGS=${T_BENCH_LOGS}\n"
      "    depends_on:\n      api:\n        condition: service_healthy\n"
      "  api:\n"
      "    build: ./api\n"
      "    command: [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n"
      "    healthcheck:\n"
      "      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://localhost:8000/\"]\n"
      "      interval: 1s\n      retries: 10\n"
      "    depends_on: [mirror]\n"
      "  mirror:\n"
      "    build:\n      context: mirror\n"
      "    hostname: mirror-box\n"
      "    ports: [\"8000\"]\n");
  write(env / "api" / "Dockerfile",
        "FROM local/mini:1\nRUN mkdir -p /www && echo from-api > /www/index.html\n");
  write(env / "mirror" / "Dockerfile",
        "FROM local/mini:1\nRUN mkdir -p /www && echo from-mirror > /www/index.html\n"
        "CMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n");
  write(task / "solution" / "solve.sh",
        "#!/bin/bash\nwget -qO- \"$API_URL/\" > /app/a\nwget -qO- http://mirror:8000/ > /app/b\n");
  write(task / "tests" / "test.sh",
        "#!/bin/bash\n"
        "if [ \"$(cat /app/a)\" = from-api ] && [ \"$(cat /app/b)\" = from-mirror ] &&\n"
        "   [ \"$(wget -qO- http://api:8000/)\" = from-api ] &&\n"
        "   [ \"$(wget -qO- http://mirror-box:8000/)\" = from-mirror ]; then echo 1; else echo 0; "
        "fi"
        " > /logs/verifier/reward.txt\n");
  // A service that asks for what a trial cannot give is refused, naming it.
  const fs::path refused = harbor_task("compose-refused");
  write(refused / "environment" / "Dockerfile", "FROM local/mini:1\n");
  write(refused / "environment" / "docker-compose.yaml",
        "services:\n  main:\n    build: .\n  db:\n    image: local/mini:1\n"
        "    extra_hosts:\n      - \"db.local:10.1.2.3\"\n");
  const std::string db = " --db " + (state / "w.db").string() + " --images " + images;

  auto oracle = warren("eval " + task.string() + " --agent oracle --json" + db);
  EXPECT_EQ(oracle.status, 0) << oracle.err;
  const Json report = Json::parse(oracle.out);
  EXPECT_EQ(report["resolved"], 1) << oracle.out;
  auto nop = warren("eval " + task.string() + " --agent nop --json" + db);
  EXPECT_EQ(Json::parse(nop.out)["resolved"], 0) << nop.out;
  // Every service's sandbox ended with the trial.
  EXPECT_TRUE(sandbox::processes_on_host("httpd -f -p 8000").empty());

  auto not_run = warren("eval " + refused.string() + " --agent oracle --json" + db);
  EXPECT_EQ(not_run.status, 1) << not_run.err;
  EXPECT_EQ(Json::parse(not_run.out)["tasks"][0]["load_error"],
            "environment/docker-compose.yaml: service db: extra_hosts cannot be honoured")
      << not_run.out;
}

// A `warren eval` killed while it builds leaves no build running: buildah is sent SIGTERM when
// Warren dies, and takes its RUN step's container down with it.
TEST_F(ImageCli, AKilledEvalLeavesNoBuildBehind) {
  ASSERT_TRUE(make_mini_root(state / "mini"));
  ASSERT_EQ(image("import local/mini:1 " + (state / "mini").string()).status, 0);
  // The RUN step's process, as /proc/PID/cmdline has it: "sleep\0SECONDS", unique enough.
  const std::string seconds = std::to_string(400 + getpid() % 97);
  const std::string marker = std::string("sleep") + '\0' + seconds;
  const fs::path task = harbor_task("slow-build");
  write(task / "environment" / "Dockerfile", "FROM local/mini:1\nRUN sleep " + seconds + "\n");
  const fs::path pid_file = state / "eval.pid";
  const std::string start = "WARREN_IMAGES=" + images + " " + WARREN_BINARY + " eval " +
                            task.string() + " --agent oracle --db " + (state / "w.db").string() +
                            " >/dev/null 2>&1 & echo $! > " + pid_file.string();
  ASSERT_EQ(std::system(start.c_str()), 0);
  bool building = false;
  for (int i = 0; i < 600 && !building; ++i) {
    building = !sandbox::processes_on_host(marker).empty();
    if (!building) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(building) << "the build's RUN step never started";
  const pid_t eval = std::stoi(slurp(pid_file.string()));
  ASSERT_EQ(kill(eval, SIGKILL), 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = sandbox::processes_on_host(marker).empty() &&
           sandbox::processes_on_host(images + "/storage").empty();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone) << "a build outlived the eval that started it";
}

TEST_F(ImageCli, BadInputIsOneLine) {
  auto missing = image("import local/x:1 " + (state / "nothing").string());
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.err, "warren image import: " + (state / "nothing").string() +
                             " is neither a root folder nor a tar archive of one\n");
  auto no_context = image("build " + (state / "nothing").string());
  EXPECT_EQ(no_context.status, 1);
  EXPECT_TRUE(no_context.err.starts_with("warren image build: nothing: the build context "))
      << no_context.err;
  auto usage = image("build");
  EXPECT_EQ(usage.status, 2);
  // A name picks no transport of the builder's other than a registry's (a host folder, an archive).
  for (const std::string name : {"bad name", "dir:/etc", "oci-archive:/x.tar",
                                 "containers-storage:warren/build-x", "docker-archive:x.tar"}) {
    auto bad_name = image("pull '" + name + "'");
    EXPECT_EQ(bad_name.status, 1);
    EXPECT_EQ(bad_name.err, "warren image pull: '" + name + "' is not an image name\n");
  }
}

}  // namespace
}  // namespace warren::testing
