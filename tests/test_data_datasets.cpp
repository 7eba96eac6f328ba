// Dataset kinds against numpy / h5py / PIL references: npy (layouts, dtypes), HDF5, IDX, digits
// CSV, image folders (labelled and flat), TLlib list files, on_error = skip, RAM cache.
#include "data/datasets.h"

#include <filesystem>
#include <fstream>
#include <functional>

#include "data_test_util.h"

using namespace shiftlab;
using namespace shiftlab::testutil;
namespace fs = std::filesystem;

namespace {

data::DatasetPtr dom(const std::string& kind, const std::string& root, const std::string& labels = "",
                     const std::string& transform = "") {
  data::DomainOptions o;
  o.dataset = kind;
  o.root = root;
  o.labels = labels;
  o.transform = transform;
  return data::make_domain(o);
}

void expect_items_equal(const data::DatasetPtr& ds, const torch::Tensor& expected, double tol, const std::string& what) {
  ASSERT_EQ(static_cast<int64_t>(ds->size()), expected.size(0)) << what;
  for (int64_t i = 0; i < expected.size(0); ++i) {
    auto s = ds->get(static_cast<size_t>(i), 0);
    ASSERT_EQ(s.image.sizes().vec(), expected[i].sizes().vec()) << what << " item " << i;
    EXPECT_LE(max_abs_diff(s.image, expected[i]), tol) << what << " item " << i;
    EXPECT_EQ(s.index, i);
  }
}

}  // namespace

TEST(DataDatasets, NpyLayoutsAndDtypesRoundTrip) {
  std::string d = data_fixtures("arrays");
  auto a = dom("npy", d + "/nhw_u8.npy", d + "/labels.npy");
  expect_items_equal(a, npy_tensor(d + "/exp_nhw_u8.npy"), 1e-6, "nhw uint8");
  EXPECT_EQ(a->num_classes(), 3);
  EXPECT_EQ(a->labels()[4], 1);
  expect_items_equal(dom("npy", d + "/nhwc_u16.npy", d + "/labels_i32.npy"), npy_tensor(d + "/exp_nhwc_u16.npy"), 1e-6,
                     "nhwc uint16 (6 bands)");
  expect_items_equal(dom("npy", d + "/nchw_f32.npy"), npy_tensor(d + "/exp_nchw_f32.npy"), 0, "nchw float32");
  data::DomainOptions lo;
  lo.dataset = "npy";
  lo.root = d + "/nhwc_u16.npy";
  lo.layout = "nhwc";
  expect_items_equal(data::make_domain(lo), npy_tensor(d + "/exp_nhwc_u16.npy"), 1e-6, "explicit nhwc");
  lo.layout = "nhw";
  EXPECT_THROW(data::make_domain(lo), core::Error);
  EXPECT_EQ(dom("npy", d + "/nchw_f32.npy")->labels()[0], -1);
  // writing with write_npy and reading back with numpy's layout
  std::string w = fresh_dir("data_npy_write");
  std::vector<float> v(2 * 3 * 4 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
  data::write_npy(w + "/x.npy", "f4", {2, 3, 4, 5}, v.data(), v.size() * 4);
  std::string out;
  ASSERT_EQ(run_shell("/usr/bin/python3 -c \"import numpy as np; a=np.load('" + w + "/x.npy'); "
                      "assert a.shape==(2,3,4,5) and a.dtype==np.float32 and a[1,2,3,4]==119*0.5; print('ok')\"",
                      &out), 0) << out;
}

TEST(DataDatasets, Hdf5ImagesAndLabels) {
  std::string d = data_fixtures("arrays");
  auto h = dom("hdf5", d + "/set.h5");
  expect_items_equal(h, npy_tensor(d + "/exp_nhwc_u16.npy"), 1e-6, "hdf5 nhwc uint16");
  EXPECT_EQ(h->labels()[5], 2);
  data::DomainOptions o;
  o.dataset = "hdf5";
  o.root = d + "/set.h5";
  o.images_key = "x_nchw";
  o.layout = "nchw";
  expect_items_equal(data::make_domain(o), npy_tensor(d + "/exp_nchw_f32.npy"), 0, "hdf5 nchw float");
  o.images_key = "nope";
  EXPECT_THROW(data::make_domain(o), core::Error);
}

TEST(DataDatasets, IdxAndDigitsCsv) {
  std::string d = data_fixtures("arrays");
  data::DomainOptions o;
  o.dataset = "idx";
  o.root = d;  // directory with train-images-idx3-ubyte.gz
  o.split = "train";
  auto idx = data::make_domain(o);
  expect_items_equal(idx, npy_tensor(d + "/exp_nhw_u8.npy"), 1e-6, "idx");
  EXPECT_EQ(idx->labels()[2], 2);
  auto csv = dom("digits_csv", d + "/digits.csv");
  expect_items_equal(csv, npy_tensor(d + "/exp_digits.npy"), 1e-6, "digits csv");
}

TEST(DataDatasets, ImageFolderListFileSkipAndCache) {
  std::string img = data_fixtures("images");
  std::string root = fresh_dir("data_image_folder");
  fs::create_directories(root + "/cat");
  fs::create_directories(root + "/dog");
  fs::copy_file(img + "/rgb.jpg", root + "/cat/a.jpg");
  fs::copy_file(img + "/rgb8.png", root + "/cat/b.png");
  fs::copy_file(img + "/gray.jpg", root + "/dog/c.jpg");
  fs::copy_file(img + "/truncated.jpg", root + "/dog/d.jpg");
  const std::string chain = "resize(16, 16), grey_to_rgb";
  // fail: the corrupt file is named
  auto ds = dom("image_folder", root, "", chain);
  ASSERT_EQ(ds->size(), 4u);
  EXPECT_EQ(ds->num_classes(), 2);
  EXPECT_EQ(ds->labels(), std::vector<int64_t>({0, 0, 1, 1}));
  try {
    ds->get(3, 0);
    ADD_FAILURE() << "corrupt file decoded";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("d.jpg"), std::string::npos) << e.what();
  }
  // pixels equal PIL's decode followed by the same resize
  auto raw0 = dom("image_folder", root)->get(0, 0).image;
  auto ref = npy_tensor(img + "/rgb.jpg.ref.npy").permute({2, 0, 1}) / 255.0;
  EXPECT_LE(max_abs_diff(raw0, ref), 1e-6);
  auto s0 = ds->get(0, 0);
  EXPECT_EQ(s0.image.sizes().vec(), std::vector<int64_t>({3, 16, 16}));
  // skip: replaced by the next readable item, counted
  data::DomainOptions o;
  o.dataset = "image_folder";
  o.root = root;
  o.transform = chain;
  o.on_error = "skip";
  o.cache = true;
  auto sk = data::make_domain(o);
  auto s3 = sk->get(3, 0);
  EXPECT_EQ(s3.index, 0);  // wrapped around to item 0
  EXPECT_TRUE(torch::equal(s3.image, s0.image));
  auto* dd = dynamic_cast<const data::DomainDataset*>(sk.get());
  ASSERT_NE(dd, nullptr);
  EXPECT_EQ(dd->skipped_count(), 1u);
  EXPECT_NE(dd->skipped_items()[0].find("d.jpg"), std::string::npos);
  EXPECT_NE(sk->describe().find("1 skipped"), std::string::npos);
  EXPECT_TRUE(torch::equal(sk->get(0, 0).image, s0.image));  // served from the cache
  EXPECT_TRUE(torch::equal(sk->get(0, 9).image, s0.image));
  // list file (TLlib format), with and without labels; unlabelled domain hides labels
  std::ofstream(root + "/list.txt") << "cat/a.jpg 4\ndog/c.jpg 1\n\n";
  o = {};
  o.dataset = "list_file";
  o.root = root;
  o.split = root + "/list.txt";
  o.transform = chain;
  auto lf = data::make_domain(o);
  EXPECT_EQ(lf->size(), 2u);
  EXPECT_EQ(lf->labels(), std::vector<int64_t>({4, 1}));
  EXPECT_EQ(lf->num_classes(), 5);
  EXPECT_TRUE(torch::equal(lf->get(0, 0).image, s0.image));
  o.labelled = false;
  auto un = data::make_domain(o);
  EXPECT_EQ(un->get(0, 0).label, -1);
  EXPECT_EQ(un->num_classes(), 0);
  // flat folder = unlabelled
  std::string flat = fresh_dir("data_flat_folder");
  fs::copy_file(img + "/rgb8.png", flat + "/x.png");
  fs::copy_file(img + "/rgba8.png", flat + "/y.png");
  auto fl = dom("image_folder", flat, "", "resize(8, 8), grey_to_rgb");
  EXPECT_EQ(fl->size(), 2u);
  EXPECT_EQ(fl->labels(), std::vector<int64_t>({-1, -1}));
  EXPECT_EQ(fl->get(1, 0).image.size(0), 3);  // RGBA -> RGB
}

TEST(DataDatasets, UnknownDatasetAndUnpreparedNameAreUsageErrors) {
  std::string root = fresh_dir("data_unprepared");
  data::DomainOptions o;
  o.dataset = "mnsit";
  o.root = root;
  try {
    data::make_domain(o);
    ADD_FAILURE();
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("mnist"), std::string::npos) << e.what();
  }
  o.dataset = "mnist";
  try {
    data::make_domain(o);
    ADD_FAILURE();
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("data prepare mnist"), std::string::npos) << e.what();
  }
}

// Seeded subsets (data.<domain>.per_class / .limit): counts per class, nesting across sizes,
// determinism, the items themselves (pixel value = base index) and the error without labels.
TEST(DataDatasets, PerClassAndLimitSubsets) {
  const int64_t n = 100;
  std::vector<uint8_t> px(n);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    px[i] = static_cast<uint8_t>(i);
    labels[i] = i % 7 == 0 ? 3 : i % 4;  // uneven classes: class 3 is larger
  }
  auto base = std::make_shared<data::ArrayDataset>(n, 1, 1, 1, px, std::vector<float>{}, labels, 4, "array");
  auto ids = [](const data::RawDatasetPtr& ds) {
    std::vector<int64_t> v;
    for (size_t j = 0; j < ds->size(); ++j) v.push_back(static_cast<int64_t>(ds->load(j, {}).u8[0]));
    return v;
  };
  auto small = data::subset_dataset(base, 3, 0, 5);
  auto big = data::subset_dataset(base, 10, 0, 5);
  ASSERT_EQ(small->size(), 12u);
  ASSERT_EQ(big->size(), 40u);
  std::vector<int> per(4, 0);
  auto s_ids = ids(small), b_ids = ids(big);
  for (size_t j = 0; j < small->size(); ++j) {
    per[static_cast<size_t>(small->labels()[j])]++;
    EXPECT_EQ(small->labels()[j], labels[static_cast<size_t>(s_ids[j])]) << "label follows its item";
  }
  EXPECT_EQ(per, std::vector<int>({3, 3, 3, 3}));
  EXPECT_TRUE(std::is_sorted(s_ids.begin(), s_ids.end()));
  for (auto i : s_ids) EXPECT_NE(std::find(b_ids.begin(), b_ids.end(), i), b_ids.end()) << "nested: " << i;
  EXPECT_EQ(ids(data::subset_dataset(base, 3, 0, 5)), s_ids) << "deterministic";
  EXPECT_NE(ids(data::subset_dataset(base, 3, 0, 6)), s_ids) << "another seed, another subset";
  EXPECT_EQ(data::subset_dataset(base, 0, 0, 5), base) << "no subset asked";
  auto lim = data::subset_dataset(base, 0, 7, 1);
  EXPECT_EQ(lim->size(), 7u);
  EXPECT_EQ(data::subset_dataset(base, 1000, 0, 1)->size(), 100u) << "per_class beyond a class keeps the class";
  EXPECT_EQ(lim->num_classes(), 4);
  auto unl = std::make_shared<data::ArrayDataset>(n, 1, 1, 1, px, std::vector<float>{}, std::vector<int64_t>(n, -1), 0,
                                                  "unlabelled");
  EXPECT_THROW(data::subset_dataset(unl, 2, 0, 0), core::UsageError);
}

namespace {
std::string label_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::Error& e) {
    return e.what();
  }
  return "NO ERROR";
}
}  // namespace

// issue 18 §2: HDF5 labels stored as floats must be integers; a labelled domain needs a label on
// every item (−1 used to crash in torch's loss); a label at or beyond the classes a data set
// declares is refused naming the item.
TEST(DataDatasets, Hdf5LabelsMustBeIntegersForEveryItem) {
  REQUIRE_PYTHON({"h5py", "numpy"});
  auto d = fresh_dir("data_h5_labels");
  ASSERT_EQ(run_shell("/usr/bin/python3 -c \"import h5py, numpy as np\n"
                      "x = np.zeros((6, 5, 5), np.uint8)\n"
                      "with h5py.File('" + d + "/f.h5', 'w') as f:\n"
                      "  f['images'] = x; f['labels'] = np.array([0, 1, 2, 0, 1.5, 2], np.float64)\n"
                      "with h5py.File('" + d + "/fi.h5', 'w') as f:\n"
                      "  f['images'] = x; f['labels'] = np.array([0, 1, 2, 0, 1, 2], np.float32)\n"
                      "with h5py.File('" + d + "/m.h5', 'w') as f:\n"
                      "  f['images'] = x; f['labels'] = np.array([0, 1, -1, 0, 1, 2], np.int64)\n\""),
            0);
  auto err = label_error_of([&] { dom("hdf5", d + "/f.h5"); });
  EXPECT_NE(err.find("'" + d + "/f.h5:labels': label 1.5 of item 4 is not an integer"), std::string::npos) << err;
  EXPECT_EQ(dom("hdf5", d + "/fi.h5")->labels(), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));  // integral floats are fine
  err = label_error_of([&] { dom("hdf5", d + "/m.h5"); });
  EXPECT_NE(err.find("'" + d + "/m.h5:labels': label -1 of item 2 in a labelled domain"), std::string::npos) << err;
  data::DomainOptions o;
  o.dataset = "hdf5";
  o.root = d + "/m.h5";
  o.labelled = false;  // an unlabelled domain may hold partial labels (they are hidden)
  EXPECT_EQ(data::make_domain(o)->num_classes(), 0);
  // a label at or beyond the declared classes (a prepared manifest's num_classes)
  err = label_error_of([] {
    data::ArrayDataset a(2, 1, 1, 1, {0, 0}, {}, {0, 5}, 3, "prepared x");
  });
  EXPECT_NE(err.find("prepared x: label 5 of item 1 is not below its 3 classes"), std::string::npos) << err;
}
