// The web page of GET /: web/index.html, which CMake wraps in a raw string literal (build/generated/).
#include "eastrt/serve.h"

namespace eastrt::serve {

const std::string& web_page() {
  static const std::string page =
#include "web_page.inc"
      ;
  return page;
}

}  // namespace eastrt::serve
