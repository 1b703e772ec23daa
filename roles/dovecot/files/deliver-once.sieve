# Managed by Ansible (roles/dovecot): runs before each user's own Sieve script, at every LMTP
# delivery.
#
# Deliver each message once. Postfix delivers again whatever it did not see confirmed: when
# Dovecot is killed or the host restarts after a message was stored but before LMTP answered
# 250, the same queue file comes back. Its top Received header written by this appliance's
# Postfix (Dovecot's own LMTP header has no "(Postfix") names the queue ID, which long queue
# IDs (enable_long_queue_ids) make unique; the program deliver-once recognises a queue file
# already stored for this recipient (see it for how). A message is discarded only then.
require ["regex", "variables", "vnd.dovecot.execute"];

if header :regex "received" "\\(Postfix[^)]*\\)[[:space:]]+(with[[:space:]]+[^[:space:]]+[[:space:]]+)?id[[:space:]]+([[:alnum:]]+)" {
  if execute :output "delivery" "deliver-once" "${2}" {
    if string :is "${delivery}" "stored" {
      discard;
      stop;
    }
  }
}
