// Runs every file of a corpus directory through LLVMFuzzerTestOneInput, so the committed corpus
// is checked on every build without libFuzzer, and checks the codec's verdict on each: a file
// named bad_* must be rejected, every other file accepted. Exit 0 when all ran with the expected
// verdict; 1 on a wrong verdict, a usage error, an unreadable file, or an empty directory. An
// invariant violation aborts.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
bool mqtlsCodecAccepts(std::span<const std::uint8_t> input);

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
  std::size_t wrong = 0;
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
    const bool bad = entry.path().filename().string().starts_with("bad_");
    if (mqtlsCodecAccepts(bytes) == bad) {
      std::cerr << entry.path() << ": expected the codec to " << (bad ? "reject" : "accept")
                << " it\n";
      ++wrong;
    }
  }
  if (wrong != 0) {
    std::cerr << wrong << " corpus files got the wrong verdict\n";
    return 1;
  }
  if (count == 0) {
    std::cerr << argv[1] << ": no corpus files\n";
    return 1;
  }
  std::cout << count << " corpus files passed\n";
  return 0;
}
