<?php
/**
 * Password plugin driver "govmail" (roles/webmail): the owner's change in Settings goes to the
 * directory as an LDAP Password Modify AS THE OWNER with the password-policy control
 * (govmail_ppolicy, from the govmail_password plugin), so the server's reason (too short, too
 * weak, reused, too young) is shown in the user's language; strength_rules() lists the policy
 * profile's rules on the form. The plugin's own length/strength checks are off
 * (password_minimum_length 0, no password_minimum_score): the directory is the one judge.
 * Driver API: plugins/password/README (save() returns a PASSWORD_* code or
 * ['code' => ..., 'message' => ...]).
 */
class rcube_govmail_password
{
    public function save($curpass, $passwd, $username)
    {
        $rcmail = rcmail::get_instance();
        $plugin = $rcmail->plugins->get_plugin('govmail_password');
        if (!$plugin) {
            return PASSWORD_ERROR;  // the govmail_password plugin is not enabled
        }
        $result = (new govmail_ppolicy($rcmail->config))->change($username, $curpass, $passwd);
        if ($result['ok']) {
            return PASSWORD_SUCCESS;
        }
        if ($result['reason'] === 'unavailable') {
            return PASSWORD_CONNECT_ERROR;
        }
        return ['code' => PASSWORD_CONSTRAINT_VIOLATION,
            'message' => $plugin->reason_text($result['reason'], $result['detail'] ?? null)];
    }

    /** @return string[] the policy profile's rules, one sentence each */
    public function strength_rules()
    {
        $plugin = rcmail::get_instance()->plugins->get_plugin('govmail_password');
        return $plugin ? $plugin->rules() : [];
    }
}
