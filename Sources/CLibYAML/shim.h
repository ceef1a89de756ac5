#ifndef FLOTILLA_CLIBYAML_SHIM_H
#define FLOTILLA_CLIBYAML_SHIM_H
#include <yaml.h>
#endif
