# The container image: scripts/image.sh builds it from source with podman (making the Debian 12
# base image with debootstrap the first time), and the test runs it beside Mosquitto. Label
# container, so a quick run can leave it out (ctest -LE container); the regular pass of
# scripts/test.sh runs it, the sanitizer pass does not (the image is built from source, not
# from that build). A cold machine (no base image, no layer cache) takes about 7 minutes
# (debootstrap ~1.5, compile ~4), a warm one with unchanged sources well under one.
find_program(MQTLS_PODMAN podman)
if(NOT MQTLS_PODMAN)
  message(FATAL_ERROR "The container test needs podman, debootstrap and runc: run scripts/setup.sh")
endif()

add_test(NAME deploy_container
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_container.py -v)
set_tests_properties(deploy_container PROPERTIES
  FIXTURES_REQUIRED pki
  TIMEOUT 1200
  # Its compile takes both cores: alone, it neither slows the timing-sensitive tests nor is slowed.
  RUN_SERIAL TRUE
  LABELS "deploy;container"
  ENVIRONMENT "MQTLS_CERTS_DIR=${MQTLS_CERTS_DIR}")
