# Installation layout and the Debian package (cpack -G DEB).
#
#   cmake --install <build> --prefix /usr   the package's layout:
#     /usr/bin/mqtls
#     /etc/mqtls/mqtls.yaml                  config/mqtls.example.yaml with its certificate paths
#                                            under /etc/mqtls/certs (MQTLS_INSTALL_CONFDIR)
#     /usr/share/doc/mqtls/                  README.md, docs/, the example and minimal
#                                            configurations, examples/ (alert rules, dashboard)
#     /lib/systemd/system/mqtls.service      deploy/systemd/mqtls.service (MQTLS_SYSTEMD_UNITDIR)
#   cpack -G DEB                              mqtls_<version>_<arch>.deb, with the maintainer
#                                            scripts of deploy/debian (user, placeholder
#                                            certificates, unit installed but not started)
include(GNUInstallDirs)

set(MQTLS_INSTALL_CONFDIR /etc/mqtls CACHE PATH "Where the configuration is installed")
set(MQTLS_SYSTEMD_UNITDIR /lib/systemd/system CACHE PATH "Where the systemd unit is installed")

# The installed configuration is the documented example, pointed at /etc/mqtls/certs (where the
# package's postinst makes placeholder certificates). A change to the example that removes one of
# these paths stops the configure step rather than shipping a configuration that cannot start.
function(mqtls_installed_config out)
  file(READ ${PROJECT_SOURCE_DIR}/config/mqtls.example.yaml text)
  set(certs "${MQTLS_INSTALL_CONFDIR}/certs")
  foreach(pair "server-ec.pem|server.pem" "server-ec.key|server.key" "ca-bundle.pem|client-ca.pem")
    string(REPLACE "|" ";" pair "${pair}")
    list(GET pair 0 from)
    list(GET pair 1 to)
    set(from "\${MQTLS_CERTS:-../certs/out}/${from}")
    string(FIND "${text}" "${from}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "config/mqtls.example.yaml no longer names ${from}: update cmake/"
                          "packaging.cmake so the installed configuration still passes --check")
    endif()
    string(REPLACE "${from}" "${certs}/${to}" text "${text}")
  endforeach()
  file(READ ${PROJECT_SOURCE_DIR}/deploy/debian/config-header.txt header)
  file(WRITE ${out} "${header}${text}")
endfunction()

set(MQTLS_INSTALLED_CONFIG ${CMAKE_BINARY_DIR}/packaging/mqtls.yaml)
mqtls_installed_config(${MQTLS_INSTALLED_CONFIG})
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/config/mqtls.example.yaml
             ${PROJECT_SOURCE_DIR}/deploy/debian/config-header.txt)

install(TARGETS mqtls RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${MQTLS_INSTALLED_CONFIG} DESTINATION ${MQTLS_INSTALL_CONFDIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/mqtls.service
        DESTINATION ${MQTLS_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/config/mqtls.example.yaml
              ${PROJECT_SOURCE_DIR}/config/minimal.yaml
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/deploy/prometheus/alerts.yaml
              ${PROJECT_SOURCE_DIR}/deploy/grafana/mqtls-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# docs/ keeps its name, so README.md's links into it still work.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mqtls)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mqtls maintainers <mqtls@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mutual-TLS front door for MQTT brokers")
set(CPACK_PACKAGE_DESCRIPTION
    "mqtls terminates TLS in front of an MQTT broker, verifies each client certificate and \
writes the identity it carries into the MQTT CONNECT as the username, so the broker sees an \
identity the client cannot forge. The systemd unit is installed but neither enabled nor started.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps; the maintainer scripts need adduser and openssl.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, openssl")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
