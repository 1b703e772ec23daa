<?php
/**
 * govmail_addressbook: the province's address book (danh bạ, REQUIREMENTS M9; LC §2.6, §16.4,
 * NB §13.4, QT §11.1), browsable by agency and sorted as Vietnamese is sorted.
 *
 * Roundcube 1.6's LDAP address book (rcube_ldap) knows two kinds of groups, neither of which is
 * the directory's tree: 'groups' lists entries whose member/uniqueMember/memberURL attribute
 * names the members (an agency here is an organizationalUnit with no such attribute), and
 * 'group_filters' is a fixed list written into the configuration (it would go stale with the
 * first `govmail account add --kind agency`). So this plugin gives Roundcube the address book
 * `govmail_addressbook` (the same properties as an entry of 'ldap_public'; roles/webmail writes
 * it) as an rcube_ldap whose 'group_filters' are read from the directory when a group list is
 * needed: every organizationalUnit under the book's base_dn (ou=agencies,<base>), named by its
 * `description` (the agency's full name; a sub-unit as "Agency › Unit"), listing the active
 * mailboxes in its subtree (its people, its units' people and the agency mailbox). Nothing is
 * copied: an agency created a second ago is there at the next page load.
 *
 * Sorting: rcube_ldap sorts with strcmp (UTF-8 bytes: "Đức" after "Em", "Ánh" after "Bình").
 * Here entries and groups are compared with ICU's Vietnamese collation (php-intl Collator,
 * locale `govmail_addressbook_collation`, default vi_VN: a ă â b c d đ e ê …, tones after the
 * base letter), on Roundcube's sort column (`addressbook_sort_col`; roles/webmail sets
 * firstname = givenName, the tên, as Vietnamese lists are ordered), then on the full name.
 * An entry without the sort attribute (an agency mailbox has no givenName) comes first.
 */
class govmail_addressbook extends rcube_plugin
{
    public $task = 'mail|addressbook|settings';

    /** the address book's id, as autocomplete_addressbooks names it */
    const ID = 'govmail';

    function init()
    {
        require_once __DIR__ . '/govmail_directory.php';

        $this->add_hook('addressbooks_list', [$this, 'addressbooks_list']);
        $this->add_hook('addressbook_get', [$this, 'addressbook_get']);
    }

    /** Hook `addressbooks_list`: args sources (id => properties); adds the province's book. */
    function addressbooks_list($args)
    {
        $props = rcmail::get_instance()->config->get('govmail_addressbook');
        if (is_array($props)) {
            $args['sources'][self::ID] = [
                'id'       => self::ID,
                'name'     => html::quote($props['name']),
                'groups'   => true,
                'readonly' => true,
                'hidden'   => false,
            ];
        }
        return $args;
    }

    /** Hook `addressbook_get`: args id, writeable; sets instance for our id (read-only: Roundcube
     * itself answers null to a caller that wants to write). */
    function addressbook_get($args)
    {
        $rcmail = rcmail::get_instance();
        $props = $rcmail->config->get('govmail_addressbook');
        if ($args['id'] === self::ID && is_array($props)) {
            $domain = $rcmail->config->mail_domain($_SESSION['storage_host'] ?? '');
            $args['instance'] = new govmail_directory($props, $rcmail->config->get('ldap_debug'), $domain,
                $rcmail->config->get('govmail_addressbook_collation', 'vi_VN'));
        }
        return $args;
    }
}
