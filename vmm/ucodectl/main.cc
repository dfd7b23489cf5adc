// ucodectl: the operator's command line for ucode (commands.h).
//
//   ucodectl [-c URI | --server ADDRESS ...] COMMAND [ARGS...]
#include <string>
#include <vector>

#include "vmm/ucodectl/commands.h"

int main(int argc, char** argv) {
  return ucode::ctl::RunUcodectl(std::vector<std::string>(argv + 1, argv + argc));
}
