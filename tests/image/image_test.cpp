// The image store (image.hpp): keys from content, builds with buildah into a store of the test's
// own, cached, listed and pruned, and a built root used by a sandbox. Builds run buildah as root
// (CI runs as root); elsewhere these tests skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "loopback_registry.hpp"
#include "mini_root.hpp"
#include "warren/image/image.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::image {
namespace {

namespace fs = std::filesystem;

using warren::testing::write;

std::string read(const fs::path& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `path` in the topmost of `image`'s layers that has it; "" when none has (what a whiteout hides
// above it is not looked for: these tests' images delete nothing they look at).
fs::path in_image(const Image& image, const std::string& path) {
  for (const std::string& layer : image.layers)
    if (fs::exists(fs::symlink_status(fs::path(layer) / path))) return fs::path(layer) / path;
  return {};
}

class ImageStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "buildah builds as root here (CI runs as root)";
    top = fs::temp_directory_path() / ("warren-image-test-" + std::to_string(getpid()));
    fs::remove_all(top);
    auto opened = Store::open((top / "store").string());
    ASSERT_TRUE(opened) << opened.error().message;
    store.emplace(std::move(*opened));
  }
  void TearDown() override {
    if (store) (void)store->prune(true);
    if (!top.empty()) fs::remove_all(top);
  }
  // The mini root imported as local/mini:1 (and the `also` names), once per test that builds.
  void import_base(const std::vector<std::string>& also = {}) {
    ASSERT_TRUE(warren::testing::make_mini_root(top / "mini"));
    auto imported = store->import("local/mini:1", (top / "mini").string(), "", also);
    ASSERT_TRUE(imported) << imported.error().message;
    EXPECT_TRUE(imported->base);
  }
  fs::path top;
  std::optional<Store> store;
};

// The store is made private (0700): a folder holding anything else is refused, untouched.
TEST_F(ImageStore, AFolderThatHoldsOtherFilesIsNotMadeAStore) {
  write(top / "busy" / "notes.txt", "mine\n");
  fs::permissions(top / "busy", fs::perms::all);
  auto opened = Store::open((top / "busy").string());
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().message, (top / "busy").string() +
                                        " is not an image store (it holds other files): name a "
                                        "new or empty folder");
  EXPECT_EQ(fs::status(top / "busy").permissions(), fs::perms::all);
  EXPECT_TRUE(Store::open(store->dir()));  // an existing store opens again
}

TEST_F(ImageStore, TheKeyIsTheContextsContentAndNeverFollowsALink) {
  const fs::path a = top / "a", b = top / "b", outside = top / "outside.txt";
  write(a / "Dockerfile", "FROM local/mini:1\nCOPY data /data\n");
  write(a / "data", "one\n");
  write(outside, "secret\n");
  fs::create_symlink(outside, a / "link");
  ASSERT_EQ(mkfifo((a / "fifo").c_str(), 0600), 0);  // opened, it would block the harness
  const auto key = store->key_of({a.string(), "Dockerfile", "a"});
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(key->size(), 64u);
  // The same content elsewhere is the same image; the link's target is not part of it.
  write(b / "Dockerfile", read(a / "Dockerfile"));
  write(b / "data", "one\n");
  fs::create_symlink(outside, b / "link");
  ASSERT_EQ(mkfifo((b / "fifo").c_str(), 0600), 0);
  write(outside, "changed\n");
  EXPECT_EQ(store->key_of({b.string(), "Dockerfile", "b"}).value_or(""), *key);
  write(b / "data", "two\n");
  EXPECT_NE(store->key_of({b.string(), "Dockerfile", "b"}).value_or(*key), *key);
  EXPECT_NE(store->key_of({a.string(), "Other", "a"}).value_or(*key), *key);
}

TEST_F(ImageStore, ABuildIsCachedAndItsLayersAreASandboxsRoot) {
  import_base({"local/mini-alias:2"});  // one root for two base names; FROM uses the second
  const fs::path context = top / "task";
  // A layer per step: what the second RUN deletes is a whiteout (a file) or an opaque folder (a
  // folder made again) over the first's.
  write(context / "Dockerfile",
        "FROM local/mini-alias:2\n"
        "RUN mkdir -p /app /etc/gone && echo built > /etc/built && chown 1000:1000 /etc/built && "
        "touch /etc/gone/old /etc/also-gone\n"
        "RUN rm -r /etc/gone /etc/also-gone && mkdir /etc/gone && touch /etc/gone/new\n"
        "COPY data.txt /app/\n"
        "WORKDIR /app\n"
        "ENV GREETING=hello\n");
  write(context / "data.txt", "from the context\n");
  std::vector<std::string> lines;
  auto built = store->build({context.string(), "Dockerfile", "task"},
                            [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(built) << built.error().message;
  EXPECT_EQ(built->workdir, "/app");
  EXPECT_NE(std::find(built->env.begin(), built->env.end(), "GREETING=hello"), built->env.end());
  EXPECT_GT(built->bytes, 1u << 20);
  ASSERT_EQ(lines.size(), 2u);  // building (with the log's path), then built
  EXPECT_NE(lines[0].find(store->dir() + "/logs/" + built->key + ".log"), std::string::npos);
  // Its layers, top first, in the builder's storage: the base's at the bottom, shared, not copied.
  ASSERT_GE(built->layers.size(), 4u);
  for (const std::string& layer : built->layers)
    EXPECT_TRUE(layer.starts_with(store->dir() + "/storage/overlay/")) << layer;
  EXPECT_TRUE(fs::exists(fs::path(built->layers.back()) / "bin/busybox"));
  EXPECT_FALSE(fs::exists(fs::path(built->layers.front()) / "bin/busybox"));
  EXPECT_FALSE(fs::exists(top / "store/roots"));
  EXPECT_EQ(read(in_image(*built, "app/data.txt")), "from the context\n");
  struct stat st {};
  ASSERT_EQ(stat(in_image(*built, "etc/built").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);  // owners as the image has them
  struct stat top_st {};
  ASSERT_EQ(stat(store->dir().c_str(), &top_st), 0);
  EXPECT_EQ(top_st.st_mode & 0777, 0700u);  // set-id programs of images are the owner's alone

  // Asked again, from another folder with the same content: found, nothing built or logged.
  fs::copy(context, top / "again", fs::copy_options::recursive);
  lines.clear();
  auto cached = store->build({(top / "again").string(), "Dockerfile", "again"},
                             [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(cached) << cached.error().message;
  EXPECT_EQ(cached->layers, built->layers);
  EXPECT_TRUE(lines.empty());

  // A sandbox on it, its root the layers stacked: the image's files, root's as the sandbox's
  // root, what a later layer deleted gone; writes go to the sandbox's own layer.
  auto ids = sandbox::IdRange::take();
  ASSERT_TRUE(ids) << ids.error().message;
  const fs::path root = top / "trial-root";
  auto stacked =
      sandbox::overlay_workspace(built->layers, {}, root.string(), ids->base(), {.bytes = 8 << 20});
  ASSERT_TRUE(stacked) << stacked.error().message;
  sandbox::Policy policy;
  policy.root = root.string();
  policy.host_ids = ids->base();
  policy.workspace_path = built->workdir;
  policy.env = built->env;
  auto ran = sandbox::run(policy, {{"/bin/bash", "-c",
                                    "pwd; cat /etc/built data.txt; echo $GREETING; "
                                    "stat -c %u /bin/busybox; ls /etc/gone; ls /etc/also-gone; "
                                    "echo x > /app/new && echo wrote"},
                                   std::nullopt});
  ASSERT_TRUE(ran) << ran.error().message;
  EXPECT_EQ(ran->stdout_data, "/app\nbuilt\nfrom the context\nhello\n0\nnew\nwrote\n")
      << ran->stderr_data;
  EXPECT_NE(ran->stderr_data.find("also-gone"), std::string::npos) << ran->stderr_data;
  EXPECT_TRUE(fs::exists(root / "app/new"));
  EXPECT_TRUE(in_image(*built, "app/new").empty());
  ASSERT_TRUE(sandbox::remove_workspace(root.string()));

  auto listed = store->list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].key, built->key);  // built images first
  EXPECT_TRUE((*listed)[1].base && (*listed)[2].base);
  EXPECT_EQ((*listed)[1].bytes, (*listed)[2].bytes);
  auto pruned = store->prune(false);
  ASSERT_TRUE(pruned) << pruned.error().message;
  ASSERT_EQ(pruned->size(), 1u);
  EXPECT_FALSE(fs::exists(built->layers.front()));
  EXPECT_TRUE(fs::exists(built->layers.back()));  // the base's
  ASSERT_EQ(store->list()->size(), 2u);           // the bases stay unless asked
  EXPECT_EQ(store->prune(true)->size(), 2u);
  EXPECT_TRUE(store->list()->empty());
}

// The key holds the base image's id, as Docker's build cache holds the parent's: a base imported
// again under the same name makes the next build a new image on it, never the stale one.
TEST_F(ImageStore, ABaseImportedAgainMakesANewImage) {
  import_base();
  const fs::path context = top / "on-base";
  write(context / "Dockerfile", "FROM local/mini:1\nRUN echo built > /built\n");
  auto first = store->build({context.string(), "Dockerfile", "on-base"});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(in_image(*first, "marker").empty());
  EXPECT_EQ(store->key_of({context.string(), "Dockerfile", "on-base"}).value_or(""), first->key);
  write(top / "mini" / "marker", "second base\n");
  ASSERT_TRUE(store->import("local/mini:1", (top / "mini").string()));
  auto second = store->build({context.string(), "Dockerfile", "on-base"});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->key, first->key);
  EXPECT_EQ(read(in_image(*second, "marker")), "second base\n");
  EXPECT_EQ(read(in_image(*second, "built")), "built\n");
}

TEST_F(ImageStore, AFailedBuildSaysWhyAndWhereItsLogIs) {
  import_base();
  const fs::path context = top / "broken";
  write(context / "Dockerfile", "FROM local/mini:1\nRUN echo boom-marker; exit 3\n");
  auto built = store->build({context.string(), "Dockerfile", "broken"});
  ASSERT_FALSE(built);
  const std::string& message = built.error().message;
  EXPECT_TRUE(message.starts_with("broken: the image build failed (")) << message;
  EXPECT_NE(message.find("boom-marker"), std::string::npos) << message;
  const auto key = store->key_of({context.string(), "Dockerfile", "broken"});
  const std::string log = store->dir() + "/logs/" + *key + ".log";
  EXPECT_TRUE(message.ends_with("Log: " + log)) << message;
  EXPECT_NE(read(log).find("boom-marker"), std::string::npos);
  EXPECT_EQ(store->list()->size(), 1u);  // nothing recorded but the base

  // Remembered: asked again, the same error at once, nothing built (no progress line); asked to
  // retry, built again; an import forgets it (the base it lacked may be here now).
  std::vector<std::string> lines;
  auto again = store->build({context.string(), "Dockerfile", "broken"},
                            [&](const std::string& line) { lines.push_back(line); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message,
            message +
                " (remembered from an earlier build; `warren image build` tries again, "
                "`warren image prune` forgets it)");
  EXPECT_TRUE(lines.empty());
  auto retried = store->build({context.string(), "Dockerfile", "broken", true},
                              [&](const std::string& line) { lines.push_back(line); });
  ASSERT_FALSE(retried);
  EXPECT_EQ(retried.error().message, message);
  EXPECT_EQ(lines.size(), 1u);  // building...
  ASSERT_TRUE(store->import("local/other:1", (top / "mini").string()));
  lines.clear();
  EXPECT_FALSE(store->build({context.string(), "Dockerfile", "broken"},
                            [&](const std::string& line) { lines.push_back(line); }));
  EXPECT_EQ(lines.size(), 1u);  // built again, not remembered

  // A base image no registry gives here: named, with the remedy.
  write(context / "Dockerfile", "FROM registry.invalid/nothing:1\nRUN true\n");
  built = store->build({context.string(), "Dockerfile", "broken"});
  ASSERT_FALSE(built);
  EXPECT_TRUE(built.error().message.starts_with(
      "broken: the base image registry.invalid/nothing:1 cannot be pulled here ("))
      << built.error().message;
  EXPECT_NE(built.error().message.find(
                "`warren image import registry.invalid/nothing:1 DIR|TAR` stands one in"),
            std::string::npos);
  // A short name that no registry is searched for, nor imported: the same.
  write(context / "Dockerfile", "FROM nothing-here/base:1\nRUN true\n");
  built = store->build({context.string(), "Dockerfile", "broken"});
  ASSERT_FALSE(built);
  EXPECT_TRUE(
      built.error().message.starts_with("broken: the base image nothing-here/base:1 cannot be "))
      << built.error().message;
}

// A Dockerfile names images as data: a name of another of buildah's transports (a host archive
// or folder, another image in the storage), a flag, an ARG, or an escape directive that would
// hide what a line says is refused before buildah sees the file. Stages of its own are names.
TEST_F(ImageStore, ADockerfileNamesNoImageThroughAnotherTransport) {
  const fs::path context = top / "hostile";
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"FROM docker-archive:/root/secret.tar\n", "FROM 'docker-archive:/root/secret.tar'"},
      {"FROM --platform=linux/amd64 oci:/var/lib/x\n", "FROM 'oci:/var/lib/x'"},
      {"FROM local/mini:1\nCOPY --from=containers-storage:other /x /x\n",
       "COPY --from 'containers-storage:other'"},
      {"FROM local/mini:1\nRUN --mount=type=bind,from=dir:/etc,target=/e cat /e/shadow\n",
       "RUN --mount from= 'dir:/etc'"},
      {"FROM -q\n", "FROM '-q'"},
      {"ARG BASE=docker-archive:/x.tar\nFROM ${BASE}\n", "FROM '${BASE}'"},
      {"from \\\n  oci-archive:/x.tar\n", "FROM 'oci-archive:/x.tar'"},
      {"# escape=`\nFROM local/mini:1\n", "a '# escape=' parser directive"},
  };
  for (const auto& [dockerfile, named] : refused) {
    write(context / "Dockerfile", dockerfile);
    auto built = store->build({context.string(), "Dockerfile", "hostile"});
    ASSERT_FALSE(built) << dockerfile;
    EXPECT_TRUE(built.error().message.starts_with("hostile: its Dockerfile names " + named))
        << built.error().message;
  }
  EXPECT_TRUE(fs::is_empty(store->dir() + "/logs"));  // buildah never ran
  write(context / "Dockerfile",
        "FROM local/mini:1 AS Build\nRUN true\nFROM local/mini:1\nCOPY --from=build /x /y\n"
        "COPY --from=0 /x /z\n");
  EXPECT_TRUE(store->key_of({context.string(), "Dockerfile", "stages"}));
}

// A Dockerfile's RUN steps are its author's: one that runs on, or prints without end, is stopped
// at its limit and the build fails saying which, its RUN step's processes gone with it.
TEST_F(ImageStore, ABuildThatRunsOnOrPrintsWithoutEndIsStopped) {
  import_base();
  const fs::path context = top / "endless";
  write(context / "Dockerfile", "FROM local/mini:1\nRUN sleep 600\n");
  const auto started = std::chrono::steady_clock::now();
  image::BuildRequest request{context.string(), "Dockerfile", "endless"};
  request.timeout = std::chrono::seconds(3);
  auto built = store->build(request);
  ASSERT_FALSE(built);
  EXPECT_TRUE(built.error().message.starts_with(
      "endless: the image build was stopped: it ran past its limit of 3 s. Log: "))
      << built.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(60));
  EXPECT_TRUE(sandbox::processes_on_host("sleep 600").empty());

  write(context / "Dockerfile",
        "FROM local/mini:1\nRUN i=0; while :; do echo warren-output-$i; i=$((i+1)); done\n");
  request.timeout = std::chrono::seconds(120);  // a backstop: the output limit comes first
  request.log_bytes = 1 << 20;
  request.retry_failed = true;
  built = store->build(request);
  ASSERT_FALSE(built);
  EXPECT_TRUE(built.error().message.starts_with(
      "endless: the image build was stopped: its output passed 1 MiB. Log: "))
      << built.error().message;
  const auto key = store->key_of(request);
  ASSERT_TRUE(key);
  EXPECT_LT(fs::file_size(store->dir() + "/logs/" + *key + ".log"), std::uintmax_t{16} << 20);
}

std::uint64_t free_bytes(const fs::path& folder) {
  struct statvfs disk {};
  return statvfs(folder.c_str(), &disk) == 0 ? disk.f_bavail * disk.f_frsize : 0;
}

// A RUN step that writes without end is stopped while the store's disk still has what is kept
// free, and what it wrote goes with its working container. The disk is a tmpfs of the test's own.
TEST_F(ImageStore, ABuildThatFillsTheStoresDiskIsStoppedAndWhatItWroteRemoved) {
  const fs::path disk = top / "disk";
  fs::create_directories(disk);
  ASSERT_EQ(mount("tmpfs", disk.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=768m,mode=0700"), 0);
  struct Unmount {
    fs::path at;
    ~Unmount() { umount2(at.c_str(), MNT_DETACH); }
  } unmount{disk};
  auto small = Store::open((disk / "store").string());
  ASSERT_TRUE(small) << small.error().message;
  ASSERT_TRUE(warren::testing::make_mini_root(top / "mini"));
  ASSERT_TRUE(small->import("local/mini:1", (top / "mini").string(), ""));
  const std::uint64_t before = free_bytes(disk);

  // 10 MiB each 50 ms or so, 1000 MiB in all: more than the disk holds.
  const fs::path context = top / "fill";
  write(context / "Dockerfile",
        "FROM local/mini:1\nRUN i=0; while [ $i -lt 100 ]; do dd if=/dev/zero of=/fill$i bs=1M "
        "count=10 2>/dev/null; i=$((i+1)); sleep 0.05; done\n");
  image::BuildRequest request{context.string(), "Dockerfile", "fill"};
  request.keep_free = std::uint64_t{384} << 20;
  auto built = small->build(request);
  ASSERT_FALSE(built);
  EXPECT_TRUE(built.error().message.starts_with("fill: the image build was stopped: the disk of " +
                                                small->dir() +
                                                " had less than 384 MiB free, which is kept "
                                                "free. Log: "))
      << built.error().message;
  EXPECT_GT(free_bytes(disk), before - (std::uint64_t{32} << 20));  // its container is gone
  EXPECT_TRUE(sandbox::processes_on_host("sleep 0.05").empty());

  // Not remembered as the task's failure: it is tried again, and refused at once while the disk
  // has less than is kept free.
  request.keep_free = std::uint64_t{1} << 30;
  built = small->build(request);
  ASSERT_FALSE(built);
  EXPECT_TRUE(
      built.error().message.starts_with("fill: the image store's disk (" + small->dir() + ") has "))
      << built.error().message;
  EXPECT_TRUE(built.error().message.ends_with(
      " MiB free, less than the 1024 MiB kept free: `warren image prune` removes unused images"))
      << built.error().message;
  (void)small->prune(true);
}

TEST_F(ImageStore, AHeredocNeedsABuildahThatReadsThem) {
  import_base();
  const fs::path context = top / "heredoc";
  write(context / "Dockerfile", "FROM local/mini:1\nRUN <<EOF\necho made > /made\nEOF\n");
  auto built = store->build({context.string(), "Dockerfile", "heredoc"});
  if (built) {  // a buildah of 1.33 or newer
    EXPECT_EQ(read(in_image(*built, "made")), "made\n");
  } else {
    EXPECT_TRUE(built.error().message.starts_with(
        "heredoc: its Dockerfile uses a heredoc (RUN <<EOF), which needs buildah 1.33 or newer; "
        "this one is 1."))
        << built.error().message;
  }
}

TEST_F(ImageStore, ABaseImageIsPulledFromARegistry) {
  ASSERT_EQ(system("command -v docker-registry >/dev/null"), 0)
      << "scripts/setup.sh installs docker-registry";
  warren::testing::LoopbackRegistry registry(top / "registry");
  const std::string conf = registry.registries_conf();
  ASSERT_EQ(setenv("CONTAINERS_REGISTRIES_CONF", conf.c_str(), 1), 0);
  // The mini root goes into the registry from this store, as an image would be published.
  import_base();
  const std::string remote = registry.address() + "/warren/mini:1";
  const std::string push = "buildah --root " + store->dir() + "/storage --runroot " + store->dir() +
                           "/run --storage-driver overlay push --quiet " +
                           "local/mini:1 docker://" + remote + " >/dev/null";
  ASSERT_EQ(system(push.c_str()), 0) << push;

  // A store that has never seen it pulls it to build FROM it.
  auto fresh = Store::open((top / "fresh").string());
  ASSERT_TRUE(fresh) << fresh.error().message;
  const fs::path context = top / "pulled";
  write(context / "Dockerfile", "FROM " + remote + "\nRUN echo pulled > /pulled\n");
  auto built = fresh->build({context.string(), "Dockerfile", "pulled"});
  EXPECT_TRUE(built) << built.error().message;
  if (built) {
    EXPECT_EQ(read(in_image(*built, "pulled")), "pulled\n");
    EXPECT_FALSE(in_image(*built, "bin/busybox").empty());
  }
  (void)fresh->prune(true);

  // The registry gone, a store without the image says which base it could not pull.
  registry.stop();
  auto other = Store::open((top / "other").string());
  ASSERT_TRUE(other) << other.error().message;
  auto refused = other->build({context.string(), "Dockerfile", "pulled"});
  unsetenv("CONTAINERS_REGISTRIES_CONF");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().message.starts_with("pulled: the base image " + remote +
                                                  " cannot be pulled here ("))
      << refused.error().message;
}

}  // namespace
}  // namespace warren::image
