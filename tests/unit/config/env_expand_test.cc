#include "config/env_expand.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace mqtls::config {
namespace {

class EnvExpandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("MQTLS_EE_SET", "value", 1);
    ::setenv("MQTLS_EE_EMPTY", "", 1);
    ::unsetenv("MQTLS_EE_UNSET");
  }
};

TEST_F(EnvExpandTest, ReplacesVariables) {
  EXPECT_EQ(*expandEnv("a/${MQTLS_EE_SET}/b"), "a/value/b");
  EXPECT_EQ(*expandEnv("${MQTLS_EE_SET}${MQTLS_EE_SET}"), "valuevalue");
  EXPECT_EQ(*expandEnv("${MQTLS_EE_EMPTY}"), "");
}

TEST_F(EnvExpandTest, DefaultAppliesWhenUnsetOrEmpty) {
  EXPECT_EQ(*expandEnv("${MQTLS_EE_UNSET:-fallback}"), "fallback");
  EXPECT_EQ(*expandEnv("${MQTLS_EE_EMPTY:-fallback}"), "fallback");
  EXPECT_EQ(*expandEnv("${MQTLS_EE_SET:-fallback}"), "value");
  EXPECT_EQ(*expandEnv("${MQTLS_EE_UNSET:-}"), "");
  EXPECT_EQ(*expandEnv("${MQTLS_EE_UNSET:-a:-b $x}"), "a:-b $x");
}

TEST_F(EnvExpandTest, DollarWithoutBraceIsLiteral) {
  EXPECT_EQ(*expandEnv("$HOME $ $$ a$"), "$HOME $ $$ a$");
}

TEST_F(EnvExpandTest, Errors) {
  auto unset = expandEnv("x${MQTLS_EE_UNSET}");
  ASSERT_FALSE(unset.ok());
  EXPECT_NE(unset.error().message.find("'MQTLS_EE_UNSET' is not set"), std::string::npos);
  EXPECT_FALSE(expandEnv("${MQTLS_EE_SET").ok());
  EXPECT_FALSE(expandEnv("${}").ok());
  EXPECT_FALSE(expandEnv("${1ABC}").ok());
  EXPECT_FALSE(expandEnv("${A-B}").ok());
}

}  // namespace
}  // namespace mqtls::config
