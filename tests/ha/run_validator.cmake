# SPDX-License-Identifier: MIT
# Runs ha_validate on fixtures and checks its exit code and output (cmake -P).
#   VALIDATOR  the ha_validate binary
#   INPUTS     comma-separated input files ("-" = feed good.txt's sibling on stdin, see below)
#   OPTIONS    comma-separated options; GENERATE_BIG makes a > 256 KiB payload instead
#   EXPECT_RC  expected exit code
#   EXPECT     text the output must contain; when empty it is taken from the first input's
#              "# expect: <text>" line and must then appear on a FAIL line
cmake_minimum_required(VERSION 3.18)

string(REPLACE "," ";" inputs "${INPUTS}")
string(REPLACE "," ";" options "${OPTIONS}")
set(stdin_file "")
set(fail_only OFF)

if("GENERATE_BIG" IN_LIST options)
  list(REMOVE_ITEM options GENERATE_BIG)
  string(REPEAT "x" 270000 filler)
  set(big "${CMAKE_CURRENT_BINARY_DIR}/ha_payload_too_big.txt")
  set(payload "{\"dev\":{\"ids\":[\"energy2mqtt_big\"]},\"o\":{\"name\":\"energy2mqtt\"},")
  string(APPEND payload "\"stat_t\":\"energy2mqtt/big/state\",\"cmps\":{\"p\":{\"p\":\"sensor\",")
  string(APPEND payload "\"uniq_id\":\"energy2mqtt_big_p\",\"name\":\"${filler}\"}}}")
  file(WRITE ${big} "homeassistant/device/energy2mqtt_big/config\t${payload}\n")
  list(APPEND inputs ${big})
  set(fail_only ON)
endif()

if("-" IN_LIST inputs)
  # Standard input: the good fixture, so "-" is exercised end to end.
  get_filename_component(here ${CMAKE_CURRENT_LIST_FILE} DIRECTORY)
  set(stdin_file ${here}/fixtures/good.txt)
endif()

if(EXPECT STREQUAL "")
  list(GET inputs 0 first)
  file(STRINGS ${first} expect_line LIMIT_COUNT 1 REGEX "^# expect: ")
  if(NOT expect_line)
    message(FATAL_ERROR "${first} has no '# expect: <reason>' line")
  endif()
  string(REGEX REPLACE "^# expect: " "" EXPECT "${expect_line}")
  set(fail_only ON)
endif()

if(stdin_file)
  execute_process(COMMAND ${VALIDATOR} ${options} ${inputs} INPUT_FILE ${stdin_file}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
else()
  execute_process(COMMAND ${VALIDATOR} ${options} ${inputs}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
endif()
message("${out}${err}")

if(NOT rc STREQUAL EXPECT_RC)
  message(FATAL_ERROR "ha_validate exited with ${rc}, expected ${EXPECT_RC}")
endif()

if(fail_only)
  # The reason must be on a FAIL line; escape it for the regular expression first.
  string(REGEX REPLACE "([][+.*()^$?|\\])" "\\\\\\1" escaped "${EXPECT}")
  if(NOT out MATCHES "(^|\n)FAIL [^\n]*${escaped}")
    message(FATAL_ERROR "no FAIL line contains: ${EXPECT}")
  endif()
else()
  string(FIND "${out}${err}" "${EXPECT}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "output does not contain: ${EXPECT}")
  endif()
endif()

# Unless this was a usage error, the last line is the summary "N passed, N failed...".
if(NOT rc STREQUAL "2" AND NOT out MATCHES "(^|\n)[0-9]+ passed, [0-9]+ failed[^\n]*\n$")
  message(FATAL_ERROR "the output does not end with the 'N passed, N failed' line")
endif()
