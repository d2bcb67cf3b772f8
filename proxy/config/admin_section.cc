// Reader of the 'admin' section: the admin HTTP listener (ops/admin_server.h).
#include "config/sections.h"

namespace mqtls::config {
namespace {

// admin.tls: a listener's tls keys, except the ones that need the MQTT data path (sni, ocsp).
// Without client_auth, a client certificate is required exactly when client_ca is given.
void readAdminTls(Context& ctx, const Field& field, Admin& admin) {
  if (!field.present()) {
    return;
  }
  TlsSettings tls;
  if (field.node.IsMap()) {
    const bool has_ca = field.node["client_ca"].IsDefined() && !field.node["client_ca"].IsNull();
    tls.client_auth = has_ca ? ClientAuth::Required : ClientAuth::None;
    for (const char* unsupported : {"sni", "ocsp", "alpn"}) {
      if (const YAML::Node value = field.node[unsupported]; value.IsDefined()) {
        ctx.diag.add(
            value.Mark(), childPath(field.path, unsupported),
            std::string("'") + unsupported + "' is not available on the admin listener; remove it");
      }
    }
  }
  readTls(ctx, field, tls);
  if (tls.client_auth == ClientAuth::Optional) {
    const Field auth{field.node["client_auth"], childPath(field.path, "client_auth"),
                     field.node["client_auth"].Mark()};
    ctx.diag.add(auth.mark, auth.path,
                 "optional would let clients without a certificate in; use required (with "
                 "client_ca) or none");
  }
  admin.tls = std::move(tls);
}

}  // namespace

void readAdmin(Context& ctx, const Field& field, const Metrics& metrics, Admin& admin) {
  Section section(ctx, field, {"listen", "allow_mutations", "broker_check", "tls"});
  readEnum<bool>(ctx, section.field("allow_mutations"), {{"true", true}, {"false", false}},
                 admin.allow_mutations);
  readEnum<bool>(ctx, section.field("broker_check"), {{"always", true}, {"on_demand", false}},
                 admin.broker_check_always);
  const Field tls = section.field("tls");
  readAdminTls(ctx, tls, admin);
  const Field listen = section.field("listen");
  auto text = readString(ctx, listen);
  if (!text || text->empty()) {
    admin.listen = metrics.listen;  // the older key names the same listener
    if (admin.listen.empty() && tls.present()) {
      ctx.diag.add(tls.mark, tls.path,
                   "the admin listener is off (admin.listen is empty); set admin.listen or "
                   "remove tls");
    }
    return;
  }
  if (std::string problem = checkListenAddress(*text); !problem.empty()) {
    ctx.diag.add(listen.mark, listen.path,
                 "invalid address '" + *text + "': " + problem +
                     "; use e.g. 127.0.0.1:9100, or \"\" to turn the admin listener off");
    return;
  }
  if (!metrics.listen.empty() && metrics.listen != *text) {
    ctx.diag.add(listen.mark, listen.path,
                 "'" + *text + "' differs from metrics.listen '" + metrics.listen +
                     "'; the admin listener serves /metrics too: remove metrics.listen or give "
                     "both the same address");
    return;
  }
  admin.listen = *text;
}

}  // namespace mqtls::config
