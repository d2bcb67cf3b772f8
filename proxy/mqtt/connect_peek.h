// Looks at a CONNECT before it is complete or decoded: the protocol level (to answer an oversized
// CONNECT in the client's own version) and, once decoded, the client's Maximum Packet Size.
// Pure, bounds-checked, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "mqtt/connect.h"
#include "mqtt/packet.h"

namespace mqtls::mqtt {

enum class LevelPeek : std::uint8_t {
  NeedMore,  // the level byte has not arrived yet
  Known,     // `level` is the client's protocol level
  Unknown,   // not a CONNECT of a level the proxy speaks: answer nothing
};

struct ConnectLevelPeek {
  LevelPeek status = LevelPeek::NeedMore;
  ProtocolLevel level = ProtocolLevel::V311;  // meaningful when Known
};

// Reads the protocol name and level byte that follow the fixed header of the CONNECT whose
// beginning is `buffered` (`header_size` as reported by peekFrame; 0 while the fixed header is
// incomplete, which is NeedMore). NeedMore until header_size + 2 + name length + 1 bytes are
// there; Unknown as soon as the name length cannot be that of "MQTT" or "MQIsdp", when the first
// byte is not a CONNECT type, or when the name and level do not fit the Remaining Length; Known
// for "MQIsdp" with level 3 and "MQTT" with level 4 or 5 (bridge bit 0x80 masked); Unknown for
// any other name or level. Never reads past buffered.size().
ConnectLevelPeek peekConnectLevel(std::span<const std::uint8_t> buffered, std::size_t header_size);

// The client's MQTT 5 Maximum Packet Size property (0x27); 0 when it is absent, malformed or the
// CONNECT is not MQTT 5. 0 means "no limit" to every function that takes such a size.
std::uint32_t maximumPacketSize(const ConnectPacket& connect);

}  // namespace mqtls::mqtt
