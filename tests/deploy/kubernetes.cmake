# The Kubernetes overlays in deploy/kubernetes, rendered with `kubectl kustomize` (offline: no
# cluster needed) and their mqtls configurations checked with the real binary. kubectl comes from
# Debian package kubernetes-client (scripts/setup.sh installs it when no kubectl is on PATH); the
# test fails with a message saying so when it is missing. Takes a few seconds.
find_program(MQTLS_KUBECTL kubectl)

add_test(NAME deploy_kubernetes
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_kubernetes.py -v)
set_tests_properties(deploy_kubernetes PROPERTIES
  FIXTURES_REQUIRED pki
  TIMEOUT 120
  LABELS deploy
  ENVIRONMENT
    "MQTLS_KUBECTL=${MQTLS_KUBECTL};MQTLS_BIN=$<TARGET_FILE:mqtls>;MQTLS_CERTS_DIR=${MQTLS_CERTS_DIR};MQTLS_MOSQUITTO=${MQTLS_MOSQUITTO}")
