// The CPU execution provider's kernels: every op of the table (common/op_table.h).
#include "../common/op_table.h"

namespace finsta {
namespace cpu {

void RegisterOps(Ort::CustomOpDomain& domain) { AddOps<Ep>(domain); }

}  // namespace cpu
}  // namespace finsta
