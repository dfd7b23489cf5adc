// Throwaway certificates for mutual-TLS tests and benchmarks, made with /usr/bin/openssl.
#ifndef UCODE_VMM_DAEMON_API_TEST_CERTIFICATES_H_
#define UCODE_VMM_DAEMON_API_TEST_CERTIFICATES_H_

#include <string>

namespace ucode::daemon {

// Writes into `dir`: ca.crt; server.{crt,key} (CN and SAN localhost, SAN IP 127.0.0.1);
// client.{crt,key} signed by the CA; rogue.{crt,key} signed by an unrelated CA. openssl's
// output goes to dir/openssl.log. Returns false if openssl failed.
bool MakeTestCertificates(const std::string& dir);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_API_TEST_CERTIFICATES_H_
