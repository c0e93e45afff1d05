// image_folder: ImageNet-style class folders decoded with OpenCV, its
// training and evaluation transforms, and its errors.
#include <doctest/doctest.h>

#include "data_test_util.h"
#include "support/support.h"

#include <sgs/errors.h>
#include <sgs/loader.h>
#include <sgs/version.h>

namespace {
// `sgs run` on `config` written to DIR/c.json, output to DIR/out: exit code,
// that output directory, stderr.
std::tuple<int, std::filesystem::path, std::string> run_config(const sgs::Json& config, const std::filesystem::path& dir) {
  sgs::test::write_json(dir / "c.json", config);
  const auto r = sgs::test::run_sgs("run " + (dir / "c.json").string() + " --out " + (dir / "out").string() + " -q", dir);
  return {r.exit_code, dir / "out", r.err};
}
}  // namespace

#if SGS_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <tuple>

using namespace sgs_test;

namespace {

// A uniform colour image; bgr in OpenCV's channel order.
void write_image(const fs::path& path, int rows, int cols, cv::Scalar bgr) {
  fs::create_directories(path.parent_path());
  cv::Mat m(rows, cols, CV_8UC3, bgr);
  REQUIRE(cv::imwrite(path.string(), m));
}

// train/{cat,dog}/, val/{cat,dog}/; cats red, dogs blue, of several sizes.
void write_folders(const fs::path& root) {
  const cv::Scalar red(0, 0, 255), blue(255, 0, 0);
  write_image(root / "train/cat/a.png", 40, 30, red);
  write_image(root / "train/cat/b.JPEG", 20, 64, red);
  write_image(root / "train/cat/c.png", 33, 33, red);
  write_image(root / "train/dog/a.png", 50, 20, blue);
  write_image(root / "train/dog/b.jpg", 24, 24, blue);
  write_bytes(root / "train/dog/notes.txt", {'h', 'i'});  // not an image: ignored
  write_image(root / "val/cat/x.png", 36, 48, red);
  write_image(root / "val/dog/y.png", 48, 36, blue);
  write_image(root / "val/dog/z.png", 16, 16, blue);
}

double normalised(int v, int c) {
  const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
  return (v / 255.0 - mean[c]) / std[c];
}

}  // namespace

TEST_CASE("image_folder: classes are train/'s sorted sub-folders, images decode as RGB at the configured size") {
  TempDir dir;
  write_folders(dir.path());
  auto d = make_dataset("image_folder", {{"root", dir.str()}, {"size", 16}});
  CHECK(d->info().num_classes == 2);
  CHECK(d->info().channels == 3);
  REQUIRE(d->train()->size() == 5);
  REQUIRE(d->test()->size() == 3);
  CHECK(d->train()->shape() == std::array<int64_t, 3>{3, 16, 16});
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 5; ++i) labels.push_back(d->train()->label(i));
  CHECK(labels == std::vector<int64_t>{0, 0, 0, 1, 1});
  // Evaluation transform of a uniform image: uniform, red (cat) or blue (dog) in RGB order.
  for (int64_t i = 0; i < 3; ++i) {
    int64_t label = -1;
    auto v = fill(*d->test(), i, false, 0, &label);
    const int r = label == 0 ? 255 : 0, b = label == 0 ? 0 : 255;
    for (int64_t p = 0; p < 16 * 16; p += 17) {
      CHECK(v[p] == doctest::Approx(normalised(r, 0)).epsilon(1e-4));
      CHECK(v[256 + p] == doctest::Approx(normalised(0, 1)).epsilon(1e-4));
      CHECK(v[512 + p] == doctest::Approx(normalised(b, 2)).epsilon(1e-4));
    }
  }
  const auto& schema = sgs::Registry::global().get("dataset", "image_folder").schema;
  CHECK(sgs::find_key(schema, "hflip")->default_value == true);
  CHECK(sgs::find_key(schema, "brightness")->default_value == 0.4);
}

TEST_CASE("image_folder: evaluation resizes the shorter side to size/0.875 and centre-crops") {
  TempDir dir;
  // 64 x 32 image: left half black, right half white; eval size 16 -> resize to 36 x 18 (shorter 18), crop 16.
  cv::Mat m(32, 64, CV_8UC3, cv::Scalar(0, 0, 0));
  m(cv::Rect(32, 0, 32, 32)).setTo(cv::Scalar(255, 255, 255));
  fs::create_directories(dir / "train/a");
  REQUIRE(cv::imwrite((dir / "train/a/img.png").string(), m));
  auto d = make_dataset("image_folder", {{"root", dir.str()}, {"size", 16}});
  CHECK(d->test() == nullptr);  // no val/ folder
  auto v = fill(*d->train(), 0);
  // The centre crop keeps the black/white edge in the middle columns.
  CHECK(v[8 * 16 + 0] == doctest::Approx(normalised(0, 0)).epsilon(1e-4));
  CHECK(v[8 * 16 + 15] == doctest::Approx(normalised(255, 0)).epsilon(1e-4));
  CHECK(v[8 * 16 + 6] < 0);
  CHECK(v[8 * 16 + 9] > 1);
}

TEST_CASE("image_folder: training crops, flips and jitters from the example's seed") {
  TempDir dir;
  write_folders(dir.path());
  // A horizontal gradient shows crops and flips.
  cv::Mat g(40, 60, CV_8UC3);
  for (int x = 0; x < 60; ++x) g.col(x).setTo(cv::Scalar(4 * x, 4 * x, 4 * x));
  REQUIRE(cv::imwrite((dir / "train/cat/gradient.png").string(), g));
  auto d = make_dataset("image_folder", {{"root", dir.str()}, {"size", 12}});
  const int64_t gradient = 3;  // sorted: a.png, b.JPEG, c.png, gradient.png
  auto a = fill(*d->train(), gradient, true, 5);
  CHECK(a == fill(*d->train(), gradient, true, 5));
  int increasing = 0, decreasing = 0;
  for (uint64_t s = 0; s < 40; ++s) {
    auto v = fill(*d->train(), gradient, true, s);
    for (float x : v) {
      REQUIRE(std::isfinite(x));
      CHECK(x >= normalised(0, 0) - 1e-4);
      CHECK(x <= normalised(255, 2) + 1e-4);
    }
    increasing += v[6 * 12 + 11] > v[6 * 12 + 0];
    decreasing += v[6 * 12 + 11] < v[6 * 12 + 0];
  }
  CHECK(increasing > 5);
  CHECK(decreasing > 5);

  // Jitter keeps a uniform grey image uniform but changes its level; off, nothing changes.
  TempDir grey;
  write_image(grey / "train/g/a.png", 30, 30, cv::Scalar(100, 100, 100));
  auto j = make_dataset("image_folder", {{"root", grey.str()}, {"size", 8}});
  std::set<float> levels;
  for (uint64_t s = 0; s < 10; ++s) {
    auto v = fill(*j->train(), 0, true, s);
    for (int64_t p = 1; p < 64; ++p) CHECK(v[p] == v[0]);
    levels.insert(v[0]);
  }
  CHECK(levels.size() > 3);
  auto off = make_dataset("image_folder", {{"root", grey.str()}, {"size", 8}, {"brightness", 0}, {"contrast", 0},
                                           {"saturation", 0}});
  for (uint64_t s = 0; s < 10; ++s)
    CHECK(fill(*off->train(), 0, true, s)[0] == doctest::Approx(normalised(100, 0)).epsilon(1e-4));
}

TEST_CASE("image_folder: missing folders, an empty class and an unknown val class are named") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", (dir / "x").string()}}),
                       ("image_folder: " + (dir / "x").string() + ": missing directory").c_str(), sgs::DataError);
  fs::create_directories(dir / "val");
  CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", dir.str()}}),
                       ("image_folder: " + (dir / "train").string() + ": missing directory").c_str(), sgs::DataError);
  fs::create_directories(dir / "train");
  CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", dir.str()}}),
                       doctest::Contains(((dir / "train").string() + ": no class folders").c_str()), sgs::DataError);
  write_folders(dir.path());
  fs::create_directories(dir / "train/empty");
  write_bytes(dir / "train/empty/readme.md", {'x'});
  CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", dir.str()}}),
                       ("image_folder: " + (dir / "train/empty").string() + ": empty class folder (no image files)").c_str(),
                       sgs::DataError);
  fs::remove_all(dir / "train/empty");
  write_image(dir / "val/bird/a.png", 10, 10, cv::Scalar(1, 2, 3));
  CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", dir.str()}}),
                       ("image_folder: " + (dir / "val/bird").string() +
                        ": class folder not found in train/ (classes are train/'s sub-folders)")
                           .c_str(),
                       sgs::DataError);
}

TEST_CASE("image_folder: an unreadable image is named by fill and rethrown by the loader's next()") {
  TempDir dir;
  write_folders(dir.path());
  const auto bad = dir / "train/dog/broken.jpg";
  write_bytes(bad, {0xff, 0xd8, 0xff, 0x00, 'n', 'o', 't', ' ', 'j', 'p', 'e', 'g'});
  // check_files off: the file is only found when it is decoded.
  auto d = make_dataset("image_folder", {{"root", dir.str()}, {"size", 8}, {"check_files", false}});
  REQUIRE(d->train()->size() == 6);
  const std::string expected =
      "image_folder: " + bad.string() + ": cannot decode the image (unreadable, corrupt or not an image)";
  CHECK_THROWS_WITH_AS(fill(*d->train(), 5), expected.c_str(), sgs::DataError);
  for (int64_t workers : {0, 2}) {
    sgs::LoaderOptions lo;
    lo.batch_size = 2;
    lo.workers = workers;
    sgs::Loader loader(d->train(), lo);
    loader.start_epoch(0);
    bool thrown = false;
    try {
      while (loader.next()) {
      }
    } catch (const sgs::DataError& e) {
      thrown = true;
      CHECK(std::string(e.what()) == expected);
    }
    CHECK(thrown);
  }
}

TEST_CASE("image_folder: empty, truncated, mislabelled and dangling image files are refused when the dataset is built") {
  TempDir dir;
  write_folders(dir.path());
  const auto png = dir / "train/cat/a.png", jpg = dir / "train/dog/b.jpg";
  std::string png_bytes, jpg_bytes;
  {
    std::ifstream p(png.string(), std::ios::binary), j(jpg.string(), std::ios::binary);
    png_bytes.assign(std::istreambuf_iterator<char>(p), {});
    jpg_bytes.assign(std::istreambuf_iterator<char>(j), {});
  }
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> make;
    std::string expected;
  };
  const std::vector<Case> cases{
      {"empty.png", [&](const fs::path& p) { write_bytes(p, {}); }, "an empty file (0 bytes), not an image"},
      {"cut.png", [&](const fs::path& p) { write_bytes(p, bytes(png_bytes.substr(0, png_bytes.size() - 20))); },
       "a truncated PNG (no IEND chunk)"},
      {"cut.jpg", [&](const fs::path& p) { write_bytes(p, bytes(jpg_bytes.substr(0, jpg_bytes.size() / 2))); },
       "a truncated JPEG (no end-of-image marker)"},
      {"text.png", [&](const fs::path& p) { write_bytes(p, {'h', 'e', 'l', 'l', 'o', '!'}); },
       "not an image (its first bytes match no JPEG, PNG, BMP, PNM, TIFF or WebP signature)"},
      {"gone.png", [&](const fs::path& p) { fs::create_symlink(dir / "nowhere.png", p); }, "a dangling symbolic link"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const fs::path p = dir / "train/dog" / c.name;
    c.make(p);
    const std::string expected = "image_folder: " + p.string() + ": " + c.expected;
    CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", dir.str()}, {"size", 8}}), expected.c_str(),
                         sgs::DataError);
    fs::remove(p);
  }
  CHECK(make_dataset("image_folder", {{"root", dir.str()}, {"size", 8}})->train()->size() == 5);
}

TEST_CASE("image_folder: sgs run on a folder with a truncated image exits 1 naming it, writing nothing") {
  TempDir dir;
  write_folders(dir.path() / "data");
  write_bytes(dir / "data/train/cat/zero.jpg", {});
  const sgs::Json config{{"epochs", 1}, {"threads", 1}, {"dataset", {{"name", "image_folder"}, {"root", (dir / "data").string()}, {"size", 8}}},
                         {"model", {{"name", "vgg11"}, {"width", 0.125}}}};
  const auto [rc, out, text] = run_config(config, dir.path());
  INFO(text);
  CHECK(rc == 1);
  CHECK(text == "sgs: data error: image_folder: " + (dir / "data/train/cat/zero.jpg").string() +
                    ": an empty file (0 bytes), not an image\n");
  CHECK_FALSE(fs::exists(out));
}

#else

using namespace sgs_test;

TEST_CASE("image_folder: a build without OpenCV refuses it in one line naming dataset.name and OpenCV") {
  TempDir dir;
  const std::string reason = "dataset 'image_folder' is not in this build: it needs OpenCV, which this build was configured without";
  CHECK_THROWS_WITH_AS(make_dataset("image_folder", {{"root", dir.str()}}), reason.c_str(), sgs::ConfigError);
  const sgs::Json config{{"epochs", 1}, {"dataset", {{"name", "image_folder"}, {"root", dir.str()}}}};
  const auto [rc, out, text] = run_config(config, dir.path());
  CHECK(rc == 2);
  CHECK(text == "sgs: error: " + (dir / "c.json").string() + ": dataset.name: " + reason + "\n");
  CHECK_FALSE(fs::exists(out));
  const fs::path listing = dir / "plugins.txt";
  const int listed_rc = std::system((std::string(SGS_BINARY) + " plugins dataset > " + listing.string()).c_str());
  std::ifstream listed(listing.string());
  std::string plugins((std::istreambuf_iterator<char>(listed)), {});
  CHECK(WEXITSTATUS(listed_rc) == 0);
  CHECK(contains(plugins, "  image_folder - not in this build: it needs OpenCV"));
}

TEST_CASE("image_folder: decoding, transforms and refused files (needs OpenCV)") {
  SGS_SKIP("this build was configured without OpenCV (SGS_WITH_OPENCV)");
}

#endif  // SGS_WITH_OPENCV
