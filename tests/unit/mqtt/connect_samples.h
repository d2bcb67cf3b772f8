// CONNECT packets written out byte by byte from the MQTT 3.1, 3.1.1 and 5.0 specifications, with
// the fields each one must decode to.
#pragma once

#include <cstdint>
#include <vector>

#include "hex.h"
#include "mqtt/connect.h"

namespace mqtls::test {

// 3.1.1, clean session, keep alive 60, client id "clid", nothing else.
inline std::vector<std::uint8_t> connect311() {
  return hex(
      "10 10"
      "00 04 4d 51 54 54"  // "MQTT"
      "04"                 // level 4
      "02"                 // clean session
      "00 3c"              // keep alive 60
      "00 04 63 6c 69 64"  // client id "clid"
  );
}

// 3.1 with every optional field: will (QoS 1, retained), user name and password.
inline std::vector<std::uint8_t> connect31() {
  return hex(
      "10 1f"
      "00 06 4d 51 49 73 64 70"  // "MQIsdp"
      "03"                       // level 3
      "ee"                       // user, password, will retain, will QoS 1, will, clean
      "00 0a"                    // keep alive 10
      "00 03 61 62 63"           // client id "abc"
      "00 01 74"                 // will topic "t"
      "00 02 62 79"              // will message "by"
      "00 01 75"                 // user name "u"
      "00 02 70 77"              // password "pw"
  );
}

// 5.0 with properties, will (QoS 2) with will properties, user name and binary password.
inline std::vector<std::uint8_t> connect5() {
  return hex(
      "10 56"
      "00 04 4d 51 54 54"                       // "MQTT"
      "05"                                      // level 5
      "d6"                                      // user, password, will QoS 2, will, clean start
      "00 3c"                                   // keep alive 60
      "16"                                      // property length 22
      "11 00 00 00 78"                          //   session expiry interval 120
      "21 00 0a"                                //   receive maximum 10
      "26 00 01 6b 00 01 76"                    //   user property k=v
      "26 00 01 61 00 01 62"                    //   user property a=b
      "00 02 63 31"                             // client id "c1"
      "1b"                                      // will property length 27
      "18 00 00 00 05"                          //   will delay interval 5
      "01 01"                                   //   payload format indicator 1
      "03 00 0a 74 65 78 74 2f 70 6c 61 69 6e"  //   content type "text/plain"
      "26 00 01 78 00 01 79"                    //   user property x=y
      "00 03 77 2f 74"                          // will topic "w/t"
      "00 03 00 ff 01"                          // will payload (binary)
      "00 04 75 73 65 72"                       // user name "user"
      "00 03 70 00 77"                          // password (binary)
  );
}

inline mqtt::ConnectPacket expected311() {
  mqtt::ConnectPacket p;
  p.level = mqtt::ProtocolLevel::V311;
  p.clean_start = true;
  p.keep_alive = 60;
  p.client_id = "clid";
  return p;
}

inline mqtt::ConnectPacket expected31() {
  mqtt::ConnectPacket p;
  p.level = mqtt::ProtocolLevel::V31;
  p.clean_start = true;
  p.keep_alive = 10;
  p.client_id = "abc";
  p.will.emplace();
  p.will->topic = "t";
  p.will->payload = "by";
  p.will->qos = 1;
  p.will->retain = true;
  p.username = "u";
  p.password = "pw";
  return p;
}

inline mqtt::ConnectPacket expected5() {
  using namespace std::string_literals;
  mqtt::ConnectPacket p;
  p.level = mqtt::ProtocolLevel::V5;
  p.clean_start = true;
  p.keep_alive = 60;
  p.properties.items() = {{0x11, "\x00\x00\x00\x78"s},
                          {0x21, "\x00\x0a"s},
                          {0x26, "\x00\x01k\x00\x01v"s},
                          {0x26,
                           "\x00\x01"
                           "a\x00\x01"
                           "b"s}};
  p.client_id = "c1";
  p.will.emplace();
  p.will->properties.items() = {{0x18, "\x00\x00\x00\x05"s},
                                {0x01, "\x01"s},
                                {0x03, "\x00\x0atext/plain"s},
                                {0x26, "\x00\x01x\x00\x01y"s}};
  p.will->topic = "w/t";
  p.will->payload = "\x00\xff\x01"s;
  p.will->qos = 2;
  p.username = "user";
  p.password = "p\x00w"s;
  return p;
}

}  // namespace mqtls::test
