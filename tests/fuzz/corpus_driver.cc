// Runs every file of a corpus directory through LLVMFuzzerTestOneInput, so the committed corpus
// is checked on every build without libFuzzer. Exit 0 when all ran; 1 on a usage error, an
// unreadable file, or an empty directory. An invariant violation aborts.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR\n";
    return 1;
  }
  std::error_code error;
  std::filesystem::directory_iterator entries(argv[1], error);
  if (error) {
    std::cerr << argv[1] << ": " << error.message() << "\n";
    return 1;
  }
  std::size_t count = 0;
  for (const auto& entry : entries) {
    if (!entry.is_regular_file(error)) {
      continue;
    }
    std::ifstream file(entry.path(), std::ios::binary);
    if (!file) {
      std::cerr << entry.path() << ": cannot read\n";
      return 1;
    }
    const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(file),
                                          std::istreambuf_iterator<char>()};
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++count;
  }
  if (count == 0) {
    std::cerr << argv[1] << ": no corpus files\n";
    return 1;
  }
  std::cout << count << " corpus files passed\n";
  return 0;
}
