# The ROS wheels' exported Python-binding targets name the include directories of the machine that built
# the wheels (/opt/python/...); point them at this Python and NumPy instead.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
foreach(_pkg action_msgs builtin_interfaces unique_identifier_msgs service_msgs std_msgs)
  set(_target "${_pkg}::${_pkg}__rosidl_generator_py")
  if(TARGET ${_target})
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs)
      list(FILTER _dirs EXCLUDE REGEX "^/opt/python/")
      list(APPEND _dirs ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endif()
endforeach()

