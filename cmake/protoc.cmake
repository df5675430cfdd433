# credito_protoc_c(TARGET <lib> OUT <dir> IMPORTS <dirs...> PROTOS <root:relpath...>)
# Generates protobuf-c code for each proto (given as ROOT|REL, REL being the import path) into OUT,
# builds it as a static library, and writes <lib>.desc: the descriptor set with every import, which
# server reflection serves.
function(credito_protoc_c)
  cmake_parse_arguments(P "" "TARGET;OUT;DESC_NAME" "IMPORTS;PROTOS" ${ARGN})
  find_program(PROTOC protoc REQUIRED)
  find_program(PROTOC_C protoc-c REQUIRED)
  set(srcs)
  set(files)
  set(iflags)
  foreach(d ${P_IMPORTS})
    list(APPEND iflags -I${d})
  endforeach()
  foreach(spec ${P_PROTOS})
    string(REPLACE "|" ";" parts "${spec}")
    list(GET parts 0 root)
    list(GET parts 1 rel)
    string(REGEX REPLACE "\\.proto$" "" base "${rel}")
    set(c "${P_OUT}/${base}.pb-c.c")
    set(h "${P_OUT}/${base}.pb-c.h")
    add_custom_command(OUTPUT ${c} ${h}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${P_OUT}
      COMMAND ${PROTOC_C} ${iflags} --c_out=${P_OUT} ${root}/${rel}
      DEPENDS ${root}/${rel}
      COMMENT "protoc-c ${rel}" VERBATIM)
    list(APPEND srcs ${c})
    list(APPEND files ${root}/${rel})
  endforeach()
  set(desc "${CMAKE_CURRENT_BINARY_DIR}/${P_TARGET}.desc")
  set(descc "${CMAKE_CURRENT_BINARY_DIR}/${P_TARGET}_desc.c")
  add_custom_command(OUTPUT ${desc}
    COMMAND ${PROTOC} ${iflags} --include_imports --descriptor_set_out=${desc} ${files}
    DEPENDS ${files} COMMENT "descriptor set ${P_TARGET}" VERBATIM)
  add_custom_command(OUTPUT ${descc}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${desc} -DOUTPUT=${descc} -DNAME=${P_DESC_NAME}
      -P ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${desc} ${PROJECT_SOURCE_DIR}/cmake/embed.cmake VERBATIM)
  add_library(${P_TARGET} STATIC ${srcs} ${descc})
  target_include_directories(${P_TARGET} PUBLIC ${P_OUT})
  target_link_libraries(${P_TARGET} PUBLIC PkgConfig::PROTOBUFC)
endfunction()
