# The systemd unit (systemd-analyze verify and security, hardening, ExecReload on a running
# mqtls) and the Debian package (cpack, apt-get install, mqtls --check, apt-get purge).
find_program(MQTLS_SYSTEMD_ANALYZE systemd-analyze)
find_program(MQTLS_DPKG_SHLIBDEPS dpkg-shlibdeps)
# A missing tool is a configuration error, not a skipped check: systemd-analyze comes with
# systemd, dpkg-shlibdeps with dpkg-dev (build-essential); scripts/setup.sh installs both.
if(NOT MQTLS_SYSTEMD_ANALYZE OR NOT MQTLS_DPKG_SHLIBDEPS)
  message(FATAL_ERROR "The package tests need systemd-analyze (Debian package systemd) and "
                      "dpkg-shlibdeps (dpkg-dev): run scripts/setup.sh")
endif()

add_test(NAME deploy_systemd
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_systemd.py -v)
set_tests_properties(deploy_systemd PROPERTIES
  FIXTURES_REQUIRED pki
  TIMEOUT 60
  LABELS deploy
  ENVIRONMENT
    "MQTLS_SYSTEMD_ANALYZE=${MQTLS_SYSTEMD_ANALYZE};MQTLS_BIN=$<TARGET_FILE:mqtls>;MQTLS_CERTS_DIR=${MQTLS_CERTS_DIR};MQTLS_MOSQUITTO=${MQTLS_MOSQUITTO}")

# Installs the package on this machine (CI runs as root on a throwaway machine) and purges it:
# alone, and not in the sanitizer pass (which excludes the label package).
add_test(NAME deploy_package
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_package.py -v)
set_tests_properties(deploy_package PROPERTIES
  TIMEOUT 180
  RUN_SERIAL TRUE
  LABELS package
  ENVIRONMENT
    "MQTLS_BUILD_DIR=${CMAKE_BINARY_DIR};MQTLS_CPACK=${CMAKE_CPACK_COMMAND};MQTLS_SYSTEMD_ANALYZE=${MQTLS_SYSTEMD_ANALYZE}")
