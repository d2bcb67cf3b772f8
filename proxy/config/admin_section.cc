// Reader of the 'admin' section: the admin HTTP listener (ops/admin_server.h).
#include "config/sections.h"

namespace mqtls::config {

void readAdmin(Context& ctx, const Field& field, const Metrics& metrics, Admin& admin) {
  Section section(ctx, field, {"listen", "allow_mutations", "broker_check", "tls"});
  readEnum<bool>(ctx, section.field("allow_mutations"), {{"true", true}, {"false", false}},
                 admin.allow_mutations);
  readEnum<bool>(ctx, section.field("broker_check"), {{"always", true}, {"on_demand", false}},
                 admin.broker_check_always);
  const Field tls = section.field("tls");
  if (tls.present()) {
    ctx.diag.add(tls.mark, tls.path,
                 "TLS on the admin listener is not supported yet; remove 'tls' and keep "
                 "admin.listen on a loopback address (e.g. 127.0.0.1:9100)");
  }
  const Field listen = section.field("listen");
  auto text = readString(ctx, listen);
  if (!text || text->empty()) {
    admin.listen = metrics.listen;  // the older key names the same listener
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
