# Run at every build (the lidartrain_version target): the git commit and the uncommitted change to the
# tracked files, if any, into generated/version.hpp (rewritten only when they change, so nothing rebuilds needlessly).
# -DSOURCE_DIR= -DOUTPUT= -DTEMPLATE= -DPROJECT_VERSION=
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE LIDARTRAIN_GIT_SHA OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT LIDARTRAIN_GIT_SHA)
  set(LIDARTRAIN_GIT_SHA unknown)
endif()
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE status)
# Dirty: the identity of the uncommitted change (a hash of `git diff HEAD`), so that two builds of the
# same commit with the same edits are known to be the same code.
set(LIDARTRAIN_GIT_DIFF "")
if(NOT status EQUAL 0)
  set(LIDARTRAIN_GIT_DIFF "unknown")
elseif(NOT changes STREQUAL "")
  execute_process(COMMAND git diff HEAD --no-ext-diff WORKING_DIRECTORY ${SOURCE_DIR} OUTPUT_VARIABLE diff ERROR_QUIET)
  string(SHA1 diff_hash "${diff}")
  string(SUBSTRING "${diff_hash}" 0 12 LIDARTRAIN_GIT_DIFF)
endif()
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
