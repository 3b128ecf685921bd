# The ROS 2 PyPI wheels export CMake targets whose INTERFACE_INCLUDE_DIRECTORIES name
# folders of the machine that built them; CMake rejects imported targets that list
# folders which do not exist. At the end of configuration, drop such folders from every
# imported target (a no-op on a regular ROS 2 install).

function(_vasa_prune_missing_include_dirs)
  get_property(_dirs GLOBAL PROPERTY _VASA_ALL_DIRS)
  foreach(_dir IN LISTS _dirs)
    get_property(_targets DIRECTORY "${_dir}" PROPERTY IMPORTED_TARGETS)
    foreach(_target IN LISTS _targets)
      get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(NOT _includes)
        continue()
      endif()
      set(_kept "")
      foreach(_inc IN LISTS _includes)
        if(_inc MATCHES "^\\$<" OR NOT IS_ABSOLUTE "${_inc}" OR EXISTS "${_inc}")
          list(APPEND _kept "${_inc}")
        endif()
      endforeach()
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endforeach()
  endforeach()
endfunction()

set_property(GLOBAL PROPERTY _VASA_ALL_DIRS "${CMAKE_CURRENT_SOURCE_DIR}")
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _vasa_prune_missing_include_dirs)
