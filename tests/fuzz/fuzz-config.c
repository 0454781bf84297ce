/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the configuration file (GKeyFile text, then our key table: types, ranges,
 * octal modes, the backend enum). ifb_config_load_data() is ifb_config_load() minus the file
 * read and the [access] group lookups.
 */
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (IfbConfig) c = ifb_config_load_data ((const char *) data, size, &error);

  /* Exactly one of a config and an error; a config's limits are within their ranges. */
  g_assert_true ((c == NULL) != (error == NULL));
  if (c) {
    g_assert_cmpuint (c->max_frame, >=, 1024);
    g_assert_cmpuint (c->max_depth, >=, 4);
    g_assert_cmpuint (c->max_depth, <=, 64);
    g_assert_cmpuint (c->socket_mode, <=, 0777);
    g_assert_true (ifb_backend_choice_to_string (c->backend) != NULL);
  }
  return 0;
}
