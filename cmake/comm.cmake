# The comm module (docs/comm.md): library dne_comm with the Self and MPI communicators always, and
# the NCCL communicator when CUDA and NCCL are found.
#
# Included from the top-level CMakeLists.txt after `dne_base` and `dne_warnings` exist and after
# find_package(MPI). DNE_WITH_NCCL is AUTO (build NCCL when found), ON (required: fail if not found)
# or OFF. CUDA 13 with NCCL lives in /usr/local/cuda on this machine kind, which has no GPU: the
# NCCL code compiles and links here and its tests skip without a device. When NCCL is built,
# DNE_WITH_NCCL=1 is a public compile definition of dne_comm and DNE_NCCL_ENABLED is ON for the
# test directories.
add_library(dne_comm STATIC src/comm/self_communicator.cpp src/comm/mpi_communicator.cpp src/comm/group_agreement.cpp)
target_link_libraries(dne_comm PUBLIC dne_base MPI::MPI_CXX PRIVATE dne_warnings)

set(DNE_WITH_NCCL AUTO CACHE STRING "NCCL communicator: AUTO (when CUDA and NCCL are found), ON (required) or OFF")
set_property(CACHE DNE_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${DNE_WITH_NCCL}" _dne_nccl_mode)
if(_dne_nccl_mode STREQUAL "AUTO")
  set(_dne_nccl_wanted TRUE)
  set(_dne_nccl_required FALSE)
elseif(DNE_WITH_NCCL)
  set(_dne_nccl_wanted TRUE)
  set(_dne_nccl_required TRUE)
else()
  set(_dne_nccl_wanted FALSE)
  set(_dne_nccl_required FALSE)
endif()

set(DNE_NCCL_ENABLED OFF)
set(_dne_nccl_why "DNE_WITH_NCCL=${DNE_WITH_NCCL}")
if(_dne_nccl_wanted)
  # Hint at the usual toolkit location unless the user chose one.
  if(NOT DEFINED CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND IS_DIRECTORY /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit QUIET)
  # NCCL_HOME (or $ENV{NCCL_HOME}) points at an NCCL install, e.g. the pip wheel nvidia-nccl-cu13,
  # which ships only lib/libnccl.so.2.
  find_path(DNE_NCCL_INCLUDE_DIR nccl.h
            HINTS ${NCCL_HOME}/include $ENV{NCCL_HOME}/include ${CUDAToolkit_INCLUDE_DIRS}
                  ${CUDAToolkit_ROOT}/include /usr/local/cuda/include)
  find_library(DNE_NCCL_LIBRARY NAMES nccl libnccl.so.2
               HINTS ${NCCL_HOME}/lib $ENV{NCCL_HOME}/lib ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_ROOT}/lib64
                     /usr/local/cuda/lib64)
  if(NOT CUDAToolkit_FOUND)
    set(_dne_nccl_why "CUDA toolkit not found (set CUDAToolkit_ROOT)")
  elseif(NOT DNE_NCCL_INCLUDE_DIR OR NOT DNE_NCCL_LIBRARY)
    set(_dne_nccl_why "nccl.h / libnccl not found (set DNE_NCCL_INCLUDE_DIR, DNE_NCCL_LIBRARY)")
  else()
    target_sources(dne_comm PRIVATE src/comm/nccl_communicator.cpp)
    target_include_directories(dne_comm SYSTEM PRIVATE ${DNE_NCCL_INCLUDE_DIR})
    target_link_libraries(dne_comm PRIVATE CUDA::cudart ${DNE_NCCL_LIBRARY})
    target_compile_definitions(dne_comm PUBLIC DNE_WITH_NCCL=1)
    set(DNE_NCCL_ENABLED ON)
    set(_dne_nccl_why "CUDA ${CUDAToolkit_VERSION}, ${DNE_NCCL_LIBRARY}")
  endif()
  if(_dne_nccl_required AND NOT DNE_NCCL_ENABLED)
    message(FATAL_ERROR "DNE_WITH_NCCL=${DNE_WITH_NCCL} but ${_dne_nccl_why}")
  endif()
endif()
message(STATUS "dne: NCCL communicator: ${DNE_NCCL_ENABLED} (${_dne_nccl_why})")
