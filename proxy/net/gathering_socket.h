// GatheringSocket: the BIO a client's TLS session reads and writes its socket through.
//
// Reads are recv() as OpenSSL's own socket BIO does them (EOF and EAGAIN reported the same way).
// Writes are gathered: OpenSSL hands over one TLS record per write, and this keeps them, in
// order, until a flush (flush() below, or OpenSSL's BIO_flush at the end of a handshake flight
// and after an alert), or until kGatherBytes are held, when it writes them out before taking
// more. Records produced on one loop turn so leave in one system call (four 16 KiB records per
// send instead of four writes). What it holds is freed once written: an idle connection holds
// nothing here.
//
// It never blocks and never throws: a full socket is a retryable write (OpenSSL then reports
// SSL_ERROR_WANT_WRITE and repeats the same record later), any other socket error a failed one
// with errno set. TLS 1.3 session tickets can be held back for the next flush (holdTicketsOf).
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstddef>
#include <vector>

namespace mqtls::net {

class GatheringSocket {
 public:
  // Bytes held before a write first sends what is held: four full records.
  static constexpr std::size_t kGatherBytes = 64 * 1024;
  // A record at least this large starts a gather with room for kGatherBytes and one more record.
  static constexpr std::size_t kLargeRecord = 8 * 1024;
  static constexpr std::size_t kFullRecord = 16 * 1024 + 256;  // header, data, largest AEAD tag

  explicit GatheringSocket(int fd) : fd_(fd) {}
  GatheringSocket(const GatheringSocket&) = delete;
  GatheringSocket& operator=(const GatheringSocket&) = delete;

  // A new BIO over this object, for SSL_set_bio(ssl, bio, bio); this object must outlive it.
  // Null when out of memory.
  BIO* newBio();

  enum class Flush { Done, Blocked, Failed };
  // Sends everything held. Blocked: the socket is full (the rest stays held); Failed: errno says
  // why (what was held is dropped: it can never be sent). `last`: the caller shuts the write side
  // down right after a Done, so the kernel may keep the bytes back for that FIN to leave in the
  // same segment (MSG_MORE; the shutdown pushes them).
  Flush flush(bool last = false);
  // Bytes held, not yet sent.
  std::size_t held() const { return held_.size() - sent_; }

  // Holds `session`'s TLS 1.3 session tickets back. OpenSSL flushes each NewSessionTicket on its
  // own once the handshake is done; held, a ticket waits for the next flush() (in practice the
  // CONNACK's records, or the close), saving a send per connection, and on loopback the
  // receiver's work the kernel does inside that send. `session` must outlive this object's BIO.
  void holdTicketsOf(const SSL* session) { ticket_session_ = session; }
  // While on, OpenSSL's own flushes (BIO_flush) keep what is held; the caller flushes after.
  void deferFlushes(bool on) { defer_flushes_ = on; }
  // True when all that is held is tickets held back: nothing that has to leave yet.
  bool onlyTicketsHeld() const { return held() > 0 && held() <= ticket_bytes_; }
  // Bytes allocated for them: at most about kGatherBytes plus two records, however long the
  // socket stays full (the sent part is dropped before more is taken).
  std::size_t footprint() const { return held_.capacity(); }

 private:
  static int bioWrite(BIO* bio, const char* data, int size);
  static int bioRead(BIO* bio, char* into, int size);
  static long bioCtrl(BIO* bio, int command, long number, void* pointer);

  int fd_;
  bool eof_ = false;
  std::vector<unsigned char> held_;
  std::size_t sent_ = 0;  // bytes at the front of held_ already sent
  const SSL* ticket_session_ = nullptr;
  std::size_t ticket_bytes_ = 0;  // held() when OpenSSL's ticket flush was held back
  bool defer_flushes_ = false;
};

}  // namespace mqtls::net
