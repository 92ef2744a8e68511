# ONNX Runtime for finsta_rt: headers as docs/environment.md says (Debian's libonnxruntime-dev 1.21, fetched
# by scripts/fetch_ort_headers.sh), the shared library of the installed onnxruntime wheel, or both
# from a user-given ORT_ROOT. Defines the imported target onnxruntime::onnxruntime and
# FINSTA_ORT_LINKS: symlinks (in the build tree) under the names the linker and the loader look
# for, since the wheel ships only libonnxruntime.so.X.Y.Z.
set(ORT_ROOT "$ENV{ORT_ROOT}" CACHE PATH
    "ONNX Runtime prefix with include/ and lib/ (empty: headers from scripts/fetch_ort_headers.sh, library from the onnxruntime wheel of FINSTA_PYTHON)")
set(ORT_INCLUDE_DIR "$ENV{ORT_INCLUDE_DIR}" CACHE PATH "Folder holding onnxruntime_cxx_api.h")
set(ORT_LIBRARY "" CACHE FILEPATH "The ONNX Runtime shared library (empty: found from ORT_ROOT or the wheel)")

if(NOT ORT_INCLUDE_DIR AND ORT_ROOT)
  foreach(d "${ORT_ROOT}/include/onnxruntime" "${ORT_ROOT}/include")
    if(EXISTS "${d}/onnxruntime_cxx_api.h")
      set(ORT_INCLUDE_DIR "${d}" CACHE PATH "Folder holding onnxruntime_cxx_api.h" FORCE)
      break()
    endif()
  endforeach()
endif()
if(NOT ORT_INCLUDE_DIR AND EXISTS "${FINSTA_REPO}/scripts/fetch_ort_headers.sh")
  execute_process(COMMAND "${FINSTA_REPO}/scripts/fetch_ort_headers.sh" OUTPUT_VARIABLE _inc
                  OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(_rc EQUAL 0)
    set(ORT_INCLUDE_DIR "${_inc}" CACHE PATH "Folder holding onnxruntime_cxx_api.h" FORCE)
  endif()
endif()
if(NOT EXISTS "${ORT_INCLUDE_DIR}/onnxruntime_cxx_api.h")
  message(FATAL_ERROR "ONNX Runtime headers not found (ORT_INCLUDE_DIR='${ORT_INCLUDE_DIR}'). Run "
                      "scripts/fetch_ort_headers.sh, or pass -DORT_INCLUDE_DIR=<folder> or -DORT_ROOT=<prefix>.")
endif()

if(NOT ORT_LIBRARY)
  if(ORT_ROOT)
    file(GLOB _libs "${ORT_ROOT}/lib/libonnxruntime.so*" "${ORT_ROOT}/lib64/libonnxruntime.so*")
  else()
    execute_process(
      COMMAND "${FINSTA_PYTHON}" -c
        "import pathlib, onnxruntime; print('\\n'.join(map(str, sorted((pathlib.Path(onnxruntime.__file__).parent / 'capi').glob('libonnxruntime.so*')))))"
      OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_VARIABLE _err RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "cannot find the onnxruntime wheel with FINSTA_PYTHON=${FINSTA_PYTHON}: ${_err}"
                          "Set FINSTA_PYTHON to a Python with onnxruntime installed, or pass -DORT_ROOT=<prefix>.")
    endif()
    string(REPLACE "\n" ";" _libs "${_out}")
  endif()
  list(FILTER _libs INCLUDE REGEX "libonnxruntime\\.so")
  if(NOT _libs)
    message(FATAL_ERROR "no libonnxruntime.so* found (ORT_ROOT='${ORT_ROOT}', FINSTA_PYTHON='${FINSTA_PYTHON}')")
  endif()
  list(GET _libs 0 _lib)
  file(REAL_PATH "${_lib}" _lib)
  set(ORT_LIBRARY "${_lib}" CACHE FILEPATH "The ONNX Runtime shared library" FORCE)
endif()
if(NOT EXISTS "${ORT_LIBRARY}")
  message(FATAL_ERROR "ORT_LIBRARY=${ORT_LIBRARY} does not exist")
endif()

# The loader looks for the SONAME (libonnxruntime.so.1), the linker for libonnxruntime.so; the
# providers (CUDA, ...) are looked up next to the library ONNX Runtime was loaded as.
set(_soname "")
find_program(FINSTA_READELF readelf)
if(FINSTA_READELF)
  execute_process(COMMAND "${FINSTA_READELF}" -d "${ORT_LIBRARY}" OUTPUT_VARIABLE _dyn ERROR_QUIET)
  string(REGEX MATCH "Library soname: \\[([^]]+)\\]" _m "${_dyn}")
  set(_soname "${CMAKE_MATCH_1}")
endif()
if(NOT _soname)
  get_filename_component(_name "${ORT_LIBRARY}" NAME)
  string(REGEX MATCH "^libonnxruntime\\.so\\.[0-9]+" _soname "${_name}")
endif()
set(FINSTA_ORT_LINK_DIR "${CMAKE_CURRENT_BINARY_DIR}/onnxruntime")
file(MAKE_DIRECTORY "${FINSTA_ORT_LINK_DIR}")
get_filename_component(_ort_dir "${ORT_LIBRARY}" DIRECTORY)
file(GLOB _providers "${_ort_dir}/libonnxruntime_providers_*.so")
set(FINSTA_ORT_LINKS "")
foreach(_name libonnxruntime.so ${_soname})
  file(CREATE_LINK "${ORT_LIBRARY}" "${FINSTA_ORT_LINK_DIR}/${_name}" SYMBOLIC)
  list(APPEND FINSTA_ORT_LINKS "${FINSTA_ORT_LINK_DIR}/${_name}")
endforeach()
foreach(_p ${_providers})
  get_filename_component(_name "${_p}" NAME)
  file(CREATE_LINK "${_p}" "${FINSTA_ORT_LINK_DIR}/${_name}" SYMBOLIC)
  list(APPEND FINSTA_ORT_LINKS "${FINSTA_ORT_LINK_DIR}/${_name}")
endforeach()

add_library(onnxruntime::onnxruntime SHARED IMPORTED)
set_target_properties(onnxruntime::onnxruntime PROPERTIES
  IMPORTED_LOCATION "${FINSTA_ORT_LINK_DIR}/libonnxruntime.so"
  INTERFACE_INCLUDE_DIRECTORIES "${ORT_INCLUDE_DIR}")
message(STATUS "finsta_rt: ONNX Runtime headers ${ORT_INCLUDE_DIR}, library ${ORT_LIBRARY} (${_soname})")
