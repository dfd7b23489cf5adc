#include "vmm/daemon/api/test_certificates.h"

#include <cstdlib>
#include <fstream>

namespace ucode::daemon {

bool MakeTestCertificates(const std::string& dir) {
  // P-256 keys: fast to generate. No extendedKeyUsage: OpenSSL then accepts the
  // certificate for both client and server authentication.
  std::string script = "set -e; cd '" + dir + "'; K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';\n"
      "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj /CN=ucoded-test-ca;\n"
      "openssl req -x509 $K -keyout rogue-ca.key -out rogue-ca.crt -days 2 -subj /CN=rogue-ca;\n"
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext;\n"
      "openssl req $K -keyout server.key -out server.csr -subj /CN=localhost;\n"
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.crt;\n"
      "openssl req $K -keyout client.key -out client.csr -subj /CN=ucodectl;\n"
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.crt;\n"
      "openssl req $K -keyout rogue.key -out rogue.csr -subj /CN=ucodectl;\n"
      "openssl x509 -req -in rogue.csr -CA rogue-ca.crt -CAkey rogue-ca.key -CAcreateserial "
      "-days 2 -out rogue.crt;\n";
  std::string path = dir + "/make-certs.sh";
  std::ofstream(path) << script;
  std::string cmd = "/bin/bash '" + path + "' >'" + dir + "/openssl.log' 2>&1";
  return system(cmd.c_str()) == 0;
}

}  // namespace ucode::daemon
