# Every dependency is found through pkg-config. paho.mqtt.c is the exception: Debian ships
# no .pc file for it, only a CMake package, so it is found through that package instead.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(MODBUS   REQUIRED IMPORTED_TARGET libmodbus)
pkg_check_modules(JANSSON  REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(YAML     REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(CURL     REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(CRYPTO   REQUIRED IMPORTED_TARGET libcrypto)
pkg_check_modules(MHD      REQUIRED IMPORTED_TARGET libmicrohttpd)
if(E2M_TESTS)
  pkg_check_modules(CHECK  REQUIRED IMPORTED_TARGET check)
endif()

pkg_check_modules(PAHO IMPORTED_TARGET paho-mqtt3as)
if(PAHO_FOUND)
  add_library(e2m_paho ALIAS PkgConfig::PAHO)
else()
  find_package(OpenSSL REQUIRED) # the paho package's link interface names OpenSSL::SSL
  find_package(eclipse-paho-mqtt-c CONFIG REQUIRED)
  add_library(e2m_paho ALIAS eclipse-paho-mqtt-c::paho-mqtt3as)
endif()

# protoc-c compiles the protocol definitions under proto/ at build time.
find_program(E2M_PROTOC_C protoc-c REQUIRED)
