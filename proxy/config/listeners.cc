// Reader for the listeners list: addresses, ports, names and their uniqueness.
#include <arpa/inet.h>

#include "config/sections.h"

namespace mqtls::config {
namespace {

// A listener as read, with what the uniqueness checks need to point at it.
struct ReadListener {
  Listener listener;
  Field name;
  Field endpoint;            // the port field, else the bind field, else the listener itself
  std::string endpoint_key;  // canonical "address port"; empty if the address was invalid
};

// The canonical text of an IPv4/IPv6 literal, or empty if `text` is not one.
std::string canonicalAddress(const std::string& text) {
  unsigned char bytes[sizeof(in6_addr)];
  char out[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, text.c_str(), bytes) == 1 &&
        inet_ntop(family, bytes, out, sizeof out) != nullptr) {
      return out;
    }
  }
  return {};
}

ReadListener readListener(Context& ctx, const Field& field, std::size_t index) {
  ReadListener read;
  Listener& listener = read.listener;
  listener.name = "listener-" + std::to_string(index);
  Section section(ctx, field, {"name", "bind", "port", "tls"});
  read.name = section.field("name");
  if (auto name = readString(ctx, read.name)) {
    if (name->empty()) {
      ctx.diag.add(read.name.mark, read.name.path, "the name is empty; give a short name");
    } else if (*name == "admin") {
      ctx.diag.add(read.name.mark, read.name.path,
                   "'admin' names the admin listener in metrics and reloads; choose another name");
    } else {
      listener.name = *name;
    }
  }
  const Field bind = section.field("bind");
  const Field port = section.field("port");
  bool endpoint_ok = true;  // false once bind or port was given but unusable
  auto address = readString(ctx, bind);
  if (address && canonicalAddress(*address).empty()) {
    ctx.diag.add(bind.mark, bind.path,
                 "'" + *address +
                     "' is not an IPv4 or IPv6 address; use a literal such as "
                     "0.0.0.0, ::, 127.0.0.1 or ::1 (host names are not accepted)");
    address.reset();
  }
  if (address) {
    listener.bind_address = *address;
  } else {
    endpoint_ok = !bind.present();
  }
  if (auto value = readInteger(ctx, port, 1, 65535)) {
    listener.port = static_cast<std::uint16_t>(*value);
  } else {
    endpoint_ok = endpoint_ok && !port.present();
  }
  read.endpoint = port.present() ? port : bind.present() ? bind : field;
  if (endpoint_ok) {
    read.endpoint_key =
        canonicalAddress(listener.bind_address) + " port " + std::to_string(listener.port);
  }
  const Field tls = section.require("tls", "add a 'tls' section with at least cert and key");
  if (tls.present()) {
    readTls(ctx, tls, listener.tls);
  }
  return read;
}

}  // namespace

void readListeners(Context& ctx, const Field& field, std::vector<Listener>& listeners) {
  if (!field.present()) {
    return;
  }
  if (!field.node.IsSequence()) {
    ctx.diag.add(field.mark, field.path,
                 "expected a list of listeners, got " + describe(field.node) +
                     "; start each listener with '- ' (e.g. '- port: 8883')");
    return;
  }
  if (field.node.size() == 0) {
    ctx.diag.add(field.mark, field.path,
                 "no listener is defined; add at least one with port and tls settings");
    return;
  }
  std::vector<ReadListener> seen;
  for (std::size_t i = 0; i < field.node.size(); ++i) {
    const YAML::Node node = field.node[i];
    const YAML::Mark mark = node.Mark().is_null() ? field.mark : node.Mark();
    ReadListener read =
        readListener(ctx, Field{node, field.path + "[" + std::to_string(i) + "]", mark}, i);
    for (const ReadListener& other : seen) {
      if (other.listener.name == read.listener.name) {
        ctx.diag.add(read.name.mark, read.name.path,
                     "listener name '" + read.listener.name + "' is already used by " +
                         other.name.path.substr(0, other.name.path.rfind('.')) +
                         "; give each listener a unique name");
      }
      if (!read.endpoint_key.empty() && other.endpoint_key == read.endpoint_key) {
        ctx.diag.add(read.endpoint.mark, read.endpoint.path,
                     "address " + read.endpoint_key + " is already used by listener '" +
                         other.listener.name + "'; change 'bind' or 'port'");
      }
    }
    listeners.push_back(read.listener);
    seen.push_back(std::move(read));
  }
}

}  // namespace mqtls::config
