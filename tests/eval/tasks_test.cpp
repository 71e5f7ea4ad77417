// Loading task suites: Terminal-Bench and Harbor directories, their Dockerfiles, and tasks that
// cannot be read (named, with the reason, while the rest load).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "warren/eval/eval.hpp"

namespace warren::eval {
namespace {

namespace fs = std::filesystem;

class Suites : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("warren-suite-test-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  void TearDown() override { fs::remove_all(root); }
  void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  // A Terminal-Bench task with a solution.yaml.
  void terminal_bench(const std::string& name) {
    const fs::path d = root / name;
    write(d / "task.yaml",
          "instruction: |-\n  Fix the parser.\n  Keep the API.\ndifficulty: easy\ncategory: "
          "debugging\n"
          "tags: [python, parsing]\nparser_name: pytest\nmax_agent_timeout_sec: 120.0\n"
          "max_test_timeout_sec: 30.5\nauthor_email: someone@example.com\n");
    write(d / "solution.yaml",
          "- command: cd /app\n  min_timeout_sec: 0.1\n  block: true\n- command: python3 fix.py\n  "
          "append_enter: true\n");
    write(d / "run-tests.sh", "pytest $TEST_DIR/test_outputs.py -rA\n");
    write(d / "tests" / "test_outputs.py", "def test_x():\n    pass\n");
    write(d / "src" / "parser.py", "x = 1\n");
    write(d / "data.csv", "a,b\n");
    write(d / "bundle.tar", "not really a tar, but named like one\n");
    write(d / "Dockerfile",
          "FROM ghcr.io/laude-institute/t-bench/python-3-13:20250620\n# a comment\nWORKDIR /app\n"
          "ENV PYTHONUNBUFFERED=1 GREETING=\"hello world\"\nENV LEGACY some value\n"
          "COPY src/ /app/src/\nCOPY data.csv .\nCOPY data.csv /opt/elsewhere.csv\nADD bundle.tar "
          "/app/vendor/\n"
          "RUN apt-get update && \\\n    apt-get install -y jq\nCMD [\"bash\"]\n");
  }
  fs::path root;
};

TEST_F(Suites, ATerminalBenchTaskLoadsWithItsEnvironment) {
  terminal_bench("fix-parser");
  auto suite = load_suite(root.string());
  ASSERT_TRUE(suite) << suite.error().message;
  ASSERT_EQ(suite->size(), 1u);
  const Task& t = (*suite)[0];
  EXPECT_EQ(t.load_error, "");
  EXPECT_EQ(t.name, "fix-parser");
  EXPECT_EQ(t.format, TaskFormat::TerminalBench);
  EXPECT_EQ(t.instruction, "Fix the parser.\nKeep the API.");
  EXPECT_EQ(t.category, "debugging");
  EXPECT_EQ(t.tags, (std::vector<std::string>{"python", "parsing"}));
  EXPECT_EQ(t.agent_timeout, std::chrono::seconds(120));
  EXPECT_EQ(t.test_timeout, std::chrono::seconds(31));
  // The steps run one after another whatever the last one's status, as Terminal-Bench types them.
  EXPECT_EQ(t.solution, "cd /app\npython3 fix.py\n");
  EXPECT_EQ(t.tests_dir, (root / "fix-parser" / "tests").string());
  EXPECT_EQ(t.test_script, (root / "fix-parser" / "run-tests.sh").string());

  const Environment& e = t.environment;
  EXPECT_EQ(e.base_image, "ghcr.io/laude-institute/t-bench/python-3-13:20250620");
  EXPECT_EQ(e.workdir, "/app");
  EXPECT_EQ(e.env, (std::vector<std::string>{"PYTHONUNBUFFERED=1", "GREETING=hello world",
                                             "LEGACY=some value"}));
  ASSERT_EQ(e.copies.size(), 3u);
  EXPECT_EQ(e.copies[0].source, "src");  // relative to the task's folder, read beneath it
  EXPECT_EQ(e.copies[0].destination, "src");
  EXPECT_EQ(e.copies[1].destination, "data.csv");
  EXPECT_FALSE(e.copies[1].extract);
  EXPECT_EQ(e.copies[2].destination, "vendor");  // ADD unpacks an archive into the directory
  EXPECT_TRUE(e.copies[2].extract);
  // Never skipped silently: the RUN line and the COPY outside the workdir need an image.
  ASSERT_EQ(e.needs_image.size(), 2u);
  EXPECT_EQ(e.needs_image[0], "COPY data.csv /opt/elsewhere.csv");
  EXPECT_NE(e.needs_image[1].find("apt-get install -y jq"), std::string::npos);
  EXPECT_EQ(e.dockerfile, "Dockerfile");
}

// What only a builder can read (globs, another stage, heredocs) makes the task need a build,
// never a load error: buildah reads it, or says why it cannot.
TEST(Dockerfile, WhatOnlyABuilderReadsNeedsABuild) {
  const fs::path dir =
      fs::temp_directory_path() / ("warren-dockerfile-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "Dockerfile")
      << "FROM base\nWORKDIR /app\nCOPY *.py ./\n"
         "COPY --from=builder /out /app/out\nCOPY <<EOT /app/x\nhi\nEOT\n";
  auto e = read_dockerfile(dir.string(), "Dockerfile", "");
  fs::remove_all(dir);
  ASSERT_TRUE(e) << e.error().message;
  ASSERT_EQ(e->needs_image.size(), 3u);
  EXPECT_EQ(e->needs_image[0], "COPY *.py ./");
  EXPECT_EQ(e->needs_image[1], "COPY --from=builder /out /app/out");
  EXPECT_EQ(e->needs_image[2], "COPY <<EOT /app/x");
}

TEST_F(Suites, AHarborTaskLoads) {
  const fs::path d = root / "count-lines";
  write(d / "task.toml",
        "version = \"1.0\"\n[metadata]\ndifficulty = \"medium\"\ncategory = \"data\"\ntags = "
        "[\"shell\"]\n"
        "[agent]\ntimeout_sec = 300.0\n[verifier]\ntimeout_sec = 45.0\n[environment]\ncpus = 1\n"
        "memory_mb = 2048\n[environment.env]\nMODE = \"strict\"\n");
  write(d / "instruction.md", "Count the lines of /app/input.txt into /app/count.txt.\n");
  write(d / "solution" / "solve.sh", "#!/bin/bash\nwc -l < input.txt > count.txt\n");
  write(d / "tests" / "test.sh", "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n");
  write(d / "environment" / "Dockerfile",
        "FROM ubuntu:24.04\nWORKDIR /app\nCOPY input.txt /app/input.txt\n");
  write(d / "environment" / "input.txt", "a\nb\n");
  auto suite = load_suite(d.string());  // a single task directory is a suite of one
  ASSERT_TRUE(suite) << suite.error().message;
  const Task& t = (*suite)[0];
  EXPECT_EQ(t.load_error, "");
  EXPECT_EQ(t.format, TaskFormat::Harbor);
  EXPECT_EQ(t.difficulty, "medium");
  EXPECT_EQ(t.agent_timeout, std::chrono::seconds(300));
  EXPECT_EQ(t.test_timeout, std::chrono::seconds(45));
  EXPECT_EQ(t.test_script, (d / "tests" / "test.sh").string());
  EXPECT_EQ(t.solution, "#!/bin/bash\nwc -l < input.txt > count.txt\n");
  ASSERT_EQ(t.environment.copies.size(), 1u);
  EXPECT_EQ(t.environment.copies[0].source, "environment/input.txt");
  EXPECT_EQ(t.environment.copies[0].destination, "input.txt");
  EXPECT_EQ(t.environment.env, (std::vector<std::string>{"MODE=strict"}));
  EXPECT_TRUE(t.environment.needs_image.empty());
}

TEST_F(Suites, InlineTestsAndAHarborTaskWithoutASolutionAreValid) {
  terminal_bench("inline-tests");
  fs::remove_all(root / "inline-tests" / "tests");  // the tests live in run-tests.sh
  const fs::path h = root / "no-solution";
  write(h / "task.toml", "[agent]\ntimeout_sec = 60.0\n");
  write(h / "instruction.md", "Do it.\n");
  write(h / "tests" / "test.sh", "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n");
  auto suite = load_suite(root.string());
  ASSERT_TRUE(suite) << suite.error().message;
  ASSERT_EQ(suite->size(), 2u);
  EXPECT_EQ((*suite)[0].load_error, "");
  EXPECT_EQ((*suite)[0].tests_dir, "");
  EXPECT_EQ((*suite)[1].load_error, "");
  EXPECT_EQ((*suite)[1].solution, "");
}

// docker-compose.yaml, as Terminal-Bench writes it: the agent's `client` service built from a
// subfolder is the task's environment; the other services are read in the order they start
// (depends_on), with what the trial honours, and what it cannot honour refuses the task, naming
// it; a client that builds from the task's own folder keeps its Dockerfile.
TEST_F(Suites, TheComposeFilesClientServiceIsTheEnvironment) {
  const std::string client_service =
      "services:\n  client:\n    build:\n      context: client\n      dockerfile: Dockerfile\n"
      "    image: ${T_BENCH_TASK_DOCKER_CLIENT_IMAGE_NAME}\n"
      "    command: [ \"sh\", \"-c\", \"sleep infinity\" ]\n";
  terminal_bench("a-subfolder");
  fs::remove(root / "a-subfolder" / "Dockerfile");
  write(root / "a-subfolder" / "docker-compose.yaml", client_service);
  write(root / "a-subfolder" / "client" / "Dockerfile",
        "FROM ubuntu:24.04\nWORKDIR /app\nCOPY setup.txt /app/\n");
  write(root / "a-subfolder" / "client" / "setup.txt", "x\n");
  terminal_bench("b-services");
  write(root / "b-services" / "client" / "Dockerfile", "FROM ubuntu:24.04\n");
  write(root / "b-services" / "api" / "Dockerfile", "FROM python:3.13\n");
  write(root / "b-services" / "docker-compose.yaml",
        client_service +
            "    environment:\n      - TEST_DIR=${T_BENCH_TEST_DIR}\n      - "
            "API_URL=http://api:8000\n"
            "  api:\n    build: ./api\n    command: uvicorn app:app --port 8000\n"
            "    depends_on:\n      db:\n        condition: service_healthy\n"
            "  db:\n    image: postgres:16\n    ports: [\"5432\"]\n    hostname: database\n"
            "    environment:\n      POSTGRES_PASSWORD: pw\n"
            "    healthcheck:\n      test: pg_isready -U postgres\n      interval: 1m30s\n"
            "      retries: 4\n");
  terminal_bench("e-cycle");
  write(root / "e-cycle" / "docker-compose.yaml",
        "services:\n  client:\n    build: .\n  a:\n    image: x\n    depends_on: [b]\n"
        "  b:\n    image: x\n    depends_on: [a]\n");
  terminal_bench("g-names");
  write(root / "g-names" / "docker-compose.yaml",
        "services:\n  client:\n    build: .\n  ../../../etc/x:\n    image: x\n");
  terminal_bench("h-context");
  write(root / "h-context" / "docker-compose.yaml",
        "services:\n  client:\n    build: .\n  api:\n    build:\n      context: ..\n"
        "      dockerfile: h-context/Dockerfile\n");
  terminal_bench("f-fixed");
  write(root / "f-fixed" / "docker-compose.yaml",
        "services:\n  client:\n    build: .\n    networks:\n      lab:\n"
        "        ipv4_address: 172.20.0.30\n");
  terminal_bench("c-own-folder");
  write(root / "c-own-folder" / "docker-compose.yaml",
        "services:\n  client:\n    build:\n      dockerfile: Dockerfile\n");
  terminal_bench("d-outside");
  write(root / "d-outside" / "docker-compose.yaml",
        "services:\n  client:\n    build: ../a-subfolder/client\n");

  auto suite = load_suite(root.string());
  ASSERT_TRUE(suite) << suite.error().message;
  ASSERT_EQ(suite->size(), 8u);
  const Task& sub = (*suite)[0];
  EXPECT_EQ(sub.load_error, "");
  EXPECT_EQ(sub.environment.dockerfile, "client/Dockerfile");
  EXPECT_EQ(sub.environment.context, "client");
  EXPECT_EQ(sub.environment.base_image, "ubuntu:24.04");
  ASSERT_EQ(sub.environment.copies.size(), 1u);
  EXPECT_EQ(sub.environment.copies[0].source, "client/setup.txt");
  const Environment& services = (*suite)[1].environment;
  EXPECT_EQ((*suite)[1].load_error, "");
  EXPECT_EQ(services.service_name, "client");
  EXPECT_EQ(services.env, std::vector<std::string>{"API_URL=http://api:8000"});
  ASSERT_EQ(services.services.size(), 2u);
  const Environment::Service& db = services.services[0];
  EXPECT_EQ(db.name, "db");  // first: api depends on it
  EXPECT_EQ(db.image_name, "postgres:16");
  EXPECT_EQ(db.aliases, std::vector<std::string>{"database"});
  EXPECT_EQ(db.env, std::vector<std::string>{"POSTGRES_PASSWORD=pw"});
  EXPECT_EQ(db.healthcheck, (std::vector<std::string>{"CMD-SHELL", "pg_isready -U postgres"}));
  EXPECT_EQ(db.health_interval, std::chrono::milliseconds(90000));
  EXPECT_EQ(db.health_retries, 4);
  EXPECT_TRUE(db.awaited);
  const Environment::Service& api = services.services[1];
  EXPECT_EQ(api.dockerfile, "api/Dockerfile");
  EXPECT_EQ(api.context, "api");
  EXPECT_TRUE(api.shell);
  EXPECT_EQ(api.command, std::vector<std::string>{"uvicorn app:app --port 8000"});
  EXPECT_FALSE(api.awaited);
  EXPECT_EQ((*suite)[2].load_error, "");
  EXPECT_EQ((*suite)[2].environment.dockerfile, "Dockerfile");
  EXPECT_EQ((*suite)[2].environment.context, "");
  EXPECT_NE((*suite)[3].load_error, "");  // a build context outside the task's folder
  EXPECT_EQ((*suite)[4].load_error,
            "docker-compose.yaml: service a: its depends_on go round in a cycle");
  EXPECT_EQ((*suite)[5].load_error,
            "docker-compose.yaml: service client: a fixed address (ipv4_address) on its network "
            "cannot be given");
  EXPECT_EQ((*suite)[6].load_error,
            "docker-compose.yaml: service ../../../etc/x: not a name a service can have");
  EXPECT_EQ((*suite)[7].load_error,
            "docker-compose.yaml: service api: its build (../h-context/Dockerfile) is not a "
            "Dockerfile beneath the task's folder");
}

TEST_F(Suites, BrokenTasksAreNamedAndTheRestLoad) {
  terminal_bench("a-good");
  write(root / "b-bad-yaml" / "task.yaml", "instruction: [unclosed\n");
  terminal_bench("c-no-solution");
  fs::remove(root / "c-no-solution" / "solution.yaml");
  write(root / "d-bad-copy" / "task.yaml", "instruction: x\n");
  write(root / "d-bad-copy" / "solution.sh", "true\n");
  write(root / "d-bad-copy" / "run-tests.sh", "true\n");
  write(root / "d-bad-copy" / "tests" / "t.py", "\n");
  write(root / "d-bad-copy" / "Dockerfile", "FROM x\nCOPY missing.txt /app/\n");
  write(root / "e-other-parser" / "task.yaml", "instruction: x\nparser_name: swebench\n");
  fs::create_directories(root / "not-a-task");

  auto suite = load_suite(root.string());
  ASSERT_TRUE(suite) << suite.error().message;
  ASSERT_EQ(suite->size(), 5u);
  EXPECT_EQ((*suite)[0].load_error, "");
  EXPECT_NE((*suite)[1].load_error, "");
  EXPECT_EQ((*suite)[2].load_error, "no solution.sh or solution.yaml");
  EXPECT_NE((*suite)[3].load_error.find("COPY source missing.txt is not in the build context"),
            std::string::npos)
      << (*suite)[3].load_error;
  EXPECT_EQ((*suite)[4].load_error, "parser_name swebench is not supported (pytest is)");

  auto nothing = load_suite((root / "not-a-task").string());
  ASSERT_FALSE(nothing);
  EXPECT_NE(nothing.error().message.find("no tasks in"), std::string::npos);
  EXPECT_FALSE(load_suite((root / "missing").string()));
}

}  // namespace
}  // namespace warren::eval

namespace warren::eval {
namespace {

// The unbiased estimator: 1 - C(n-c, k) / C(n, k).
TEST(PassAtK, MatchesTheBinomialFormula) {
  EXPECT_DOUBLE_EQ(pass_at_k(1, 1, 1), 1.0);
  EXPECT_DOUBLE_EQ(pass_at_k(1, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(4, 1, 1), 0.25);
  EXPECT_NEAR(pass_at_k(4, 1, 2), 0.5, 1e-12);           // 1 - C(3,2)/C(4,2) = 1 - 3/6
  EXPECT_NEAR(pass_at_k(5, 2, 3), 1 - 1.0 / 10, 1e-12);  // 1 - C(3,3)/C(5,3)
  EXPECT_DOUBLE_EQ(pass_at_k(3, 2, 2), 1.0);             // fewer failures than k: always
  EXPECT_DOUBLE_EQ(pass_at_k(0, 0, 1), 0.0);
}

}  // namespace
}  // namespace warren::eval
