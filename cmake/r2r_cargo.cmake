# r2r_cargo: build this crate's ROS 2 binaries with cargo inside a colcon/ament_cmake build.
#
#   r2r_cargo(
#     PACKAGES   <ros packages the Rust code uses, messages and rcl>...
#     BINARIES   <cargo [[bin]] targets to build and install>...
#     [FEATURES  <cargo features>...]
#     [PROFILE   <cargo profile, default colcon>])
#
# r2r's build scripts generate Rust bindings for ROS messages. They read:
#   CMAKE_IDL_PACKAGES  ':'-separated <prefix>/share/<pkg>/cmake dirs: the packages to generate
#                       (here: PACKAGES and everything they depend on);
#   CMAKE_INCLUDE_DIRS  ':'-separated C include dirs for bindgen;
#   AMENT_PREFIX_PATH   (from the sourced workspace) to find and link the rcl libraries.
# The binaries are installed to lib/${PROJECT_NAME}, where `ros2 run` and launch look.

function(r2r_cargo)
  cmake_parse_arguments(R2R "" "PROFILE" "PACKAGES;BINARIES;FEATURES" ${ARGN})
  if(NOT R2R_PROFILE)
    set(R2R_PROFILE colcon)
  endif()
  if(NOT R2R_BINARIES)
    message(FATAL_ERROR "r2r_cargo: give at least one BINARIES name")
  endif()

  # Walk the dependency graph breadth first (a work list, not recursion: CMake functions do
  # not return lists up a recursion cheaply). Each package is found once.
  set(_queue ${R2R_PACKAGES})
  set(_seen "")
  set(_include_dirs "")
  set(_idl_dirs "")
  while(_queue)
    list(POP_FRONT _queue _pkg)
    if(_pkg IN_LIST _seen)
      continue()
    endif()
    list(APPEND _seen ${_pkg})
    find_package(${_pkg} REQUIRED)
    list(APPEND _include_dirs ${${_pkg}_INCLUDE_DIRS})
    # <prefix>/share/<pkg>/cmake; r2r looks for msg/ srv/ action/ next to it.
    if(DEFINED ${_pkg}_DIR)
      list(APPEND _idl_dirs ${${_pkg}_DIR})
    endif()
    list(APPEND _queue ${${_pkg}_DEPENDENCIES})
  endwhile()
  list(REMOVE_DUPLICATES _include_dirs)
  list(REMOVE_DUPLICATES _idl_dirs)
  string(REPLACE ";" ":" _include_dirs_str "${_include_dirs}")
  string(REPLACE ";" ":" _idl_dirs_str "${_idl_dirs}")

  set(_cargo_target_dir "${CMAKE_BINARY_DIR}/cargo")
  set(_cargo_args build --profile ${R2R_PROFILE} --target-dir ${_cargo_target_dir})
  if(R2R_FEATURES)
    string(REPLACE ";" "," _features "${R2R_FEATURES}")
    list(APPEND _cargo_args --features ${_features})
  endif()
  set(_outputs "")
  foreach(_bin ${R2R_BINARIES})
    list(APPEND _cargo_args --bin ${_bin})
    list(APPEND _outputs "${_cargo_target_dir}/${R2R_PROFILE}/${_bin}")
  endforeach()

  # The command as a person would type it (a CMake list prints with `;` between items).
  string(REPLACE ";" " " _cargo_command_line "cargo;${_cargo_args}")

  # Always run cargo: it knows better than CMake whether the Rust sources changed.
  add_custom_target(${PROJECT_NAME}_cargo ALL
    COMMAND ${CMAKE_COMMAND} -E env
      "CMAKE_INCLUDE_DIRS=${_include_dirs_str}"
      "CMAKE_IDL_PACKAGES=${_idl_dirs_str}"
      cargo ${_cargo_args}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}
    COMMENT "${_cargo_command_line}"
    USES_TERMINAL
    VERBATIM)

  install(PROGRAMS ${_outputs} DESTINATION lib/${PROJECT_NAME})
endfunction()
