// Reader for the identity section: which certificate fields become the MQTT identity.
#include <algorithm>

#include "config/sections.h"

namespace mqtls::config {
namespace {

constexpr IdentitySource kAllSources[] = {IdentitySource::Cn,
                                          IdentitySource::Dn,
                                          IdentitySource::SanUri,
                                          IdentitySource::SpiffeId,
                                          IdentitySource::SanDns,
                                          IdentitySource::SanEmail,
                                          IdentitySource::FingerprintSha256,
                                          IdentitySource::Serial};

std::vector<std::string_view> sourceNames() {
  std::vector<std::string_view> names;
  for (IdentitySource source : kAllSources) {
    names.push_back(identitySourceName(source));
  }
  return names;
}

std::string joinedNames() {
  std::string out;
  for (auto name : sourceNames()) {
    out += (out.empty() ? "" : ", ") + std::string(name);
  }
  return out;
}

constexpr std::size_t kMaxPropertyName = 255;

// Reads an ordered, non-empty list of distinct certificate fields; `out` is replaced only if
// every entry is acceptable.
void readUsernameFrom(Context& ctx, const Field& field, std::vector<IdentitySource>& out) {
  if (!field.present()) {
    return;
  }
  const std::vector<std::string_view> names = sourceNames();
  std::vector<IdentitySource> sources;
  bool ok = true;
  for (const Field& item : readList(ctx, field)) {
    auto index = readChoice(ctx, item, names);
    if (!index) {
      ok = false;
    } else if (std::find(sources.begin(), sources.end(), kAllSources[*index]) != sources.end()) {
      ctx.diag.add(item.mark, item.path,
                   "'" + std::string(names[*index]) + "' is listed twice; remove the repeat");
      ok = false;
    } else {
      sources.push_back(kAllSources[*index]);
    }
  }
  if (ok && sources.empty() && field.node.IsSequence()) {
    ctx.diag.add(field.mark, field.path,
                 "the list is empty; name at least one certificate field, e.g. [cn]");
    return;
  }
  if (ok && !sources.empty()) {
    out = std::move(sources);
  }
}

// Checks one property name; empty if acceptable, else what is wrong.
std::string checkPropertyName(const std::string& name,
                              const std::vector<std::pair<IdentitySource, std::string>>& taken) {
  if (name.empty() || name.size() > kMaxPropertyName) {
    return "the property name must be 1 to 255 bytes long; give a name like x-cert-cn";
  }
  for (const auto& [source, used] : taken) {
    if (used == name) {
      return "property name '" + name + "' is already used for '" +
             std::string(identitySourceName(source)) + "'; give each property its own name";
    }
  }
  return {};
}

// Reads "source: property-name" pairs in file order.
void readUserProperties(Context& ctx, const Field& field,
                        std::vector<std::pair<IdentitySource, std::string>>& out) {
  if (!field.present()) {
    return;
  }
  if (!field.node.IsMap()) {
    ctx.diag.add(field.mark, field.path,
                 "expected a map of 'certificate-field: property-name', got " +
                     describe(field.node) + "; e.g. 'cn: x-cert-cn'");
    return;
  }
  const std::vector<std::string_view> names = sourceNames();
  for (const auto& item : field.node) {
    const std::string key_path =
        item.first.IsScalar() ? childPath(field.path, item.first.Scalar()) : field.path;
    const Field key{item.first, key_path, item.first.Mark()};
    auto index = item.first.IsScalar() ? std::find(names.begin(), names.end(), key.node.Scalar())
                                       : names.end();
    if (index == names.end()) {
      ctx.diag.add(key.mark, key.path,
                   "unknown certificate field " + describe(key.node) +
                       suggestion(key.node.Scalar(), names) + "; use one of: " + joinedNames());
      continue;
    }
    const IdentitySource source = kAllSources[index - names.begin()];
    if (std::any_of(out.begin(), out.end(), [&](const auto& p) { return p.first == source; })) {
      ctx.diag.add(key.mark, key.path,
                   "duplicate key '" + key.node.Scalar() + "'; keep only one of them");
      continue;
    }
    const YAML::Mark value_mark = item.second.Mark();
    const Field value{item.second, key.path, value_mark.is_null() ? key.mark : value_mark};
    auto name = readString(ctx, value);
    std::string problem = !value.present() ? "no property name given; give a name like x-cert-cn"
                          : name           ? checkPropertyName(*name, out)
                                           : std::string();
    if (!problem.empty()) {
      ctx.diag.add(value.present() ? value.mark : key.mark, value.path, problem);
    } else if (name) {
      out.emplace_back(source, *name);
    }
  }
}

}  // namespace

void readIdentity(Context& ctx, const Field& field, IdentityPolicy& identity) {
  Section section(ctx, field,
                  {"username_from", "username", "password", "client_id", "client_id_separator",
                   "user_properties", "publish_properties", "anonymous"});
  readUsernameFrom(ctx, section.field("username_from"), identity.username_from);
  readEnum<UsernamePolicy>(ctx, section.field("username"),
                           {{"replace", UsernamePolicy::Replace},
                            {"if_empty", UsernamePolicy::IfEmpty},
                            {"require_match", UsernamePolicy::RequireMatch}},
                           identity.username);
  readEnum<PasswordPolicy>(ctx, section.field("password"),
                           {{"keep", PasswordPolicy::Keep}, {"strip", PasswordPolicy::Strip}},
                           identity.password);
  readEnum<ClientIdPolicy>(ctx, section.field("client_id"),
                           {{"keep", ClientIdPolicy::Keep},
                            {"require_match", ClientIdPolicy::RequireMatch},
                            {"replace", ClientIdPolicy::Replace},
                            {"prefix", ClientIdPolicy::Prefix}},
                           identity.client_id);
  const Field separator_field = section.field("client_id_separator");
  if (auto separator = readString(ctx, separator_field)) {
    if (separator->empty()) {
      ctx.diag.add(separator_field.mark, separator_field.path,
                   "empty separator would let identities and client ids run together; use a "
                   "character identities never contain, e.g. \"|\"");
    } else {
      identity.client_id_separator = *separator;
    }
  }
  readUserProperties(ctx, section.field("user_properties"), identity.user_properties);
  readUserProperties(ctx, section.field("publish_properties"), identity.publish_properties);
  readEnum<AnonymousPolicy>(
      ctx, section.field("anonymous"),
      {{"passthrough", AnonymousPolicy::Passthrough}, {"refuse", AnonymousPolicy::Refuse}},
      identity.anonymous);
}

}  // namespace mqtls::config
