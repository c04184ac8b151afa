#include "model/encoders/html_unescape.h"

#include "gtest/gtest.h"

namespace recsys {
namespace {

TEST(HtmlUnescapeTest, NamedEntities) {
  EXPECT_EQ(HtmlUnescape("Hold &amp; Error"), "Hold & Error");
  EXPECT_EQ(HtmlUnescape("&quot;x&quot; &lt;y&gt; &apos;"), "\"x\" <y> '");
  EXPECT_EQ(HtmlUnescape("10&deg;C &plusmn;1 &reg;"),
            "10\xC2\xB0" "C \xC2\xB1" "1 \xC2\xAE");
  EXPECT_EQ(HtmlUnescape("&Oslash;5mm &eacute;"), "\xC3\x98" "5mm \xC3\xA9");
  EXPECT_EQ(HtmlUnescape("a&nbsp;b"), "a\xC2\xA0" "b");
}

TEST(HtmlUnescapeTest, NumericEntities) {
  EXPECT_EQ(HtmlUnescape("it&#39;s it&#x27;s it&#X27;s"), "it's it's it's");
  EXPECT_EQ(HtmlUnescape("&#8364;&#x20AC;"), "\xE2\x82\xAC\xE2\x82\xAC");
  EXPECT_EQ(HtmlUnescape("&#0;&#xD800;&#99999999999;"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(HtmlUnescapeTest, LeavesNonEntitiesAlone) {
  EXPECT_EQ(HtmlUnescape("AT&T"), "AT&T");
  EXPECT_EQ(HtmlUnescape("&bogus; & &; &#; &#xZZ;"), "&bogus; & &; &#; &#xZZ;");
  EXPECT_EQ(HtmlUnescape("&amp;amp;"), "&amp;");  // one level only
  EXPECT_EQ(HtmlUnescape("trailing &amp"), "trailing &amp");
}

}  // namespace
}  // namespace recsys
