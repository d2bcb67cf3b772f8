// Where settings were written in the configuration file, kept as plain data so that checks made
// after loading (the TLS material, see startup_check.h) can report at the right place.
#pragma once

#include <map>
#include <string>

namespace mqtls::config {

// A setting's value in the file: 1-based line and column, and its key path as written
// ("listeners[0].tls.crl" for a single CRL given without a list).
struct SettingPosition {
  int line = 0;
  int column = 0;
  std::string path;
};

// By canonical key: "listeners[<i>].tls.<key>", list items as "listeners[<i>].tls.crl[<k>]"
// where k indexes TlsSettings::crl_files. Only settings whose value was read without error.
using SettingPositions = std::map<std::string, SettingPosition>;

}  // namespace mqtls::config
