// Shared fixture for the config tests: each test gets its own temporary directory, config text
// is written there as a file (so error positions are those of the text), and ${CERTS} in the
// text points at the generated test PKI. load() runs the complete check of `mqtls --check`
// (startup_check.h): the YAML, then the TLS material of every listener.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/loader.h"
#include "startup_check.h"

namespace mqtls::config::testing {

namespace fs = std::filesystem;

inline std::string joinErrors(const LoadResult& result) {
  std::string text;
  for (const auto& error : result.errors) {
    text += error + "\n";
  }
  return text;
}

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("mqtls-config-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ::setenv("CERTS", MQTLS_CERTS_DIR, 1);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `text` to `name` inside the test directory; returns its path.
  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }

  LoadResult load(const std::string& text) {
    path_ = write("mqtls.yaml", text);
    return startup::checkConfigFile(path_).loaded;
  }

  Config loadOk(const std::string& text) {
    LoadResult result = load(text);
    EXPECT_TRUE(result.ok()) << joinErrors(result);
    EXPECT_TRUE(result.errors.empty());
    return result.ok() ? *result.config : Config{};
  }

  // Asserts exactly one error, starting "<file>:<position>: <key_path>: " (no key path if empty)
  // and containing `what`.
  void expectOneError(const LoadResult& result, const std::string& position,
                      const std::string& key_path, const std::string& what) {
    EXPECT_FALSE(result.ok());
    ASSERT_EQ(result.errors.size(), 1u) << joinErrors(result);
    expectError(result.errors[0], position, key_path, what);
  }

  void expectError(const std::string& error, const std::string& position,
                   const std::string& key_path, const std::string& what) {
    const std::string prefix =
        path_ + ":" + position + ": " + (key_path.empty() ? "" : key_path + ": ");
    EXPECT_EQ(error.substr(0, prefix.size()), prefix) << error;
    EXPECT_NE(error.find(what), std::string::npos) << error;
  }

  static std::string cert(const std::string& file) {
    return std::string(MQTLS_CERTS_DIR) + "/" + file;
  }

  fs::path dir_;
  std::string path_;
};

// A valid one-listener configuration; the TLS file paths are on lines 4-6.
inline constexpr const char* kMinimal = R"(listeners:
  - port: 8883
    tls:
      cert: ${CERTS}/server-ec.pem
      key: ${CERTS}/server-ec.key
      client_ca: ${CERTS}/ca-bundle.pem
)";

}  // namespace mqtls::config::testing
